"""Keep the documentation honest: every hook documented, CI runs the README's commands."""

import inspect
import re

from conftest import ROOT
from runpipe import hookspecs


def readme() -> str:
    return (ROOT / "README.md").read_text()


def test_ci_runs_the_readme_test_command():
    blocks = re.findall(r"```bash\n(.*?)```", readme(), re.S)
    test_block = next(b for b in blocks if "run the tests" in b)
    command = [line for line in test_block.splitlines() if line and not line.startswith("#")][0]
    assert command in (ROOT / ".ci" / "run").read_text().splitlines()


def test_readme_installs_are_pinned_by_the_constraints_file():
    """A fresh machine gets the versions CI tested, not whatever PyPI has that day."""
    blocks = re.findall(r"```bash\n(.*?)```", readme(), re.S)
    installs = [line for block in blocks for line in block.splitlines() if "pip install" in line]
    assert len(installs) >= 2 and all("-c constraints.txt" in line for line in installs), installs
    pins = [line for line in (ROOT / "constraints.txt").read_text().splitlines() if line and not line.startswith("#")]
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-]+==\S+", pin) for pin in pins), pins
    assert {"faster-whisper", "ctranslate2", "onnxruntime", "numpy"} <= {pin.split("==")[0].lower() for pin in pins}


def test_readme_main_command_uses_shipped_files():
    blocks = re.findall(r"```bash\n(.*?)```", readme(), re.S)
    main = next(b for b in blocks if "main job" in b)
    assert "runpipe pipelines/podcast.yaml samples/podcast_sample.ogg" in main
    assert (ROOT / "pipelines" / "podcast.yaml").exists() and (ROOT / "samples" / "podcast_sample.ogg").exists()


def test_every_hook_has_a_docstring_and_is_named_in_the_readme():
    hooks = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("runpipe_")]
    assert len(hooks) >= 15
    for name in hooks:
        assert inspect.getdoc(getattr(hookspecs, name)), f"{name} has no docstring"
    text = readme()
    for stage in ("runpipe_ingest", "runpipe_normalize", "runpipe_analyze", "runpipe_postprocess", "runpipe_export"):
        assert stage in text


def test_packaging_lists_every_package():
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    mapping = config["package-dir"]
    found = set()
    for package, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            if "__pycache__" in rel.parts:
                continue
            found.add(".".join([package, *rel.parts]) if rel.parts else package)
    assert found <= listed, f"packages missing from pyproject: {sorted(found - listed)}"


def test_the_plugin_testing_example_in_the_readme_runs(tmp_path, monkeypatch):
    """The README's FakeGemini example is run as written (with the example plugin as my_plugin)."""
    import runpipe_highlights

    block = next(b for b in re.findall(r"```python\n(.*?)```", readme(), re.S) if "def test_my_exporter" in b)
    namespace = {"my_plugin": runpipe_highlights}
    exec(compile(block, "README.md", "exec"), namespace)
    namespace["test_my_exporter"](tmp_path, monkeypatch)
    assert (tmp_path / "a.csv").read_text().startswith("start,end,speaker")
