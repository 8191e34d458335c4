"""Every hook has a test here (``test_hook_<name>``) and a section in docs/hooks.md with its exact
signature; the meta-tests at the end fail when a hook is added, renamed or changes its arguments
without both."""

import dataclasses
import inspect
import json
import re
import sys
import types

import pytest

from answers import TRANSCRIPT
from conftest import ROOT
from runpipe import hookimpl, hookspecs
from runpipe.interfaces import Executor, Source
from runpipe.model import MediaItem
from runpipe.testing import ScriptedBackend, ScriptedBackendPlugin, make_engine, tone_wav

DOCS = ROOT / "docs" / "hooks.md"
SPEC = {"name": "t", "stages": {"analyze": {"backend": "scripted", "tasks": [{"prompt": "transcript"}]},
                                "postprocess": {"steps": []}, "export": {"formats": ["json", "txt"]}}}


def hook_names() -> list[str]:
    return sorted(name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("runpipe_"))


def run_with(tmp_path, *plugins, inputs=None, spec=SPEC, backend_plugin=None):
    backend_plugin = backend_plugin or ScriptedBackendPlugin(TRANSCRIPT)
    with make_engine([backend_plugin, *plugins]) as engine:
        return engine.run(engine.load_dict(spec), inputs or [str(tone_wav(tmp_path / "a.wav", 2))], output_dir=tmp_path / "out")


# -- registration ------------------------------------------------------------------------------------


def test_hook_runpipe_register_sources(tmp_path):
    audio = tone_wav(tmp_path / "real.wav", 2)

    class DemoSource(Source):
        name = "demo"

        def claims(self, location):
            return location.startswith("demo://")  # the file source claims whatever has no scheme

        def resolve(self, location, options):
            yield MediaItem(uri=str(audio), kind="file", name="demo.wav")

    class Plugin:
        @hookimpl
        def runpipe_register_sources(self, register):
            register(DemoSource)

    result = run_with(tmp_path, Plugin(), inputs=["demo://anything"])
    assert [(r.item.name, r.status) for r in result.inputs] == [("demo.wav", "done")]


def test_hook_runpipe_register_backends():
    plugin = ScriptedBackendPlugin()
    with make_engine([plugin]) as engine:
        registration = engine.registries.backends.registration("scripted")
    assert registration.value is plugin.backend and issubclass(plugin.backend, ScriptedBackend)
    assert registration.plugin == "ScriptedBackendPlugin-0"


def test_hook_runpipe_register_prompts():
    from runpipe import Prompt

    class Plugin:
        @hookimpl
        def runpipe_register_prompts(self, register):
            register(Prompt(name="best-moments", text="List the best moments.", schema="transcript"))

    with make_engine([ScriptedBackendPlugin(), Plugin()]) as engine:
        (task,) = engine.check(engine.load_dict({"name": "t", "stages": {"analyze": {"backend": "scripted", "tasks": [{"prompt": "best-moments"}]}}}))
    assert task.prompt.startswith("List the best moments.") and task.schema_name == "transcript"


def test_hook_runpipe_register_postprocessors(tmp_path):
    from runpipe.interfaces import PostProcessor

    class Upper(PostProcessor):
        name = "upper"

        def process(self, document):
            return dataclasses.replace(document, segments=tuple(dataclasses.replace(s, content=s.content.upper()) for s in document.segments))

    class Plugin:
        @hookimpl
        def runpipe_register_postprocessors(self, register):
            register(Upper)

    spec = {**SPEC, "stages": {**SPEC["stages"], "postprocess": {"steps": ["upper"]}}}
    result = run_with(tmp_path, Plugin(), spec=spec)
    assert result.inputs[0].documents[0].segments[0].content == "WELCOME BACK TO THE SHOW."


def test_hook_runpipe_register_exporters():
    with make_engine() as engine:
        assert [r.name for r in engine.registries.exporters if r.plugin == "runpipe.plugins.exporters"] == ["json", "srt", "vtt", "md", "txt"]


def test_hook_runpipe_register_executors(tmp_path):
    from runpipe.runner import process_input

    seen = []

    class InOrder(Executor):
        name = "in-order"

        def map(self, engine, run, items, concurrency):
            for item in items:
                seen.append(item.name)
                yield process_input(engine, run, item)

    class Plugin:
        @hookimpl
        def runpipe_register_executors(self, register):
            register(InOrder)

    backend_plugin = ScriptedBackendPlugin(TRANSCRIPT)
    with make_engine([backend_plugin, Plugin()]) as engine:
        result = engine.run(engine.load_dict(SPEC), [str(tone_wav(tmp_path / "a.wav", 2))], output_dir=tmp_path / "out", executor="in-order")
    assert seen == ["a.wav"] and result.ok


# -- configuration -----------------------------------------------------------------------------------


def test_hook_runpipe_configure():
    configured = []

    class Plugin:
        @hookimpl
        def runpipe_configure(self, engine):
            configured.append(("srt" in engine.registries.exporters, engine))

    with make_engine([Plugin()]) as engine:
        assert configured == [(True, engine)]
        engine.register(Plugin(), "late")  # historic: a late plugin is configured at once
        assert len(configured) == 2 and configured[1][1] is engine


# -- stages ------------------------------------------------------------------------------------------


def test_hook_runpipe_ingest(tmp_path):
    audio, other = tone_wav(tmp_path / "real.wav", 2), tone_wav(tmp_path / "other.wav", 1)

    class Plugin:
        @hookimpl
        def runpipe_ingest(self, location, run):
            return [MediaItem(uri=str(other), kind="file", name="x.wav")] if location == "demo:" else None

    result = run_with(tmp_path, Plugin(), inputs=["demo:", str(audio)])
    assert sorted(r.item.name for r in result.inputs) == ["real.wav", "x.wav"] and result.ok


def test_hook_runpipe_normalize(tmp_path):
    seen = []

    class Plugin:
        @hookimpl(wrapper=True)
        def runpipe_normalize(self, item, run):
            audio = yield
            seen.append((item.name, audio.sample_rate))
            return dataclasses.replace(audio, mime_type="audio/x-wrapped")

    result = run_with(tmp_path, Plugin())
    assert seen == [("a.wav", 16000)] and result.inputs[0].documents[0].audio.mime_type == "audio/x-wrapped"


def test_hook_runpipe_analyze(tmp_path):
    class Replace:
        @hookimpl
        def runpipe_analyze(self, audio, task, run):
            from runpipe.model import Analysis

            return Analysis(task=task.name, data={"summary": "replaced", "segments": []}, backend="mine", model="m")

    backend_plugin = ScriptedBackendPlugin(TRANSCRIPT)
    result = run_with(tmp_path, Replace(), backend_plugin=backend_plugin)
    document = result.inputs[0].documents[0]
    assert document.summary == "replaced" and document.backend == "mine"
    assert len(backend_plugin.answers) == 1 and not backend_plugin.calls  # the built-in never asked the backend


def test_hook_runpipe_postprocess(tmp_path):
    class Plugin:
        @hookimpl(wrapper=True)
        def runpipe_postprocess(self, analysis, audio, task, run):
            document = yield
            return dataclasses.replace(document, notes=document.notes + ("reviewed",))

    result = run_with(tmp_path, Plugin())
    assert result.inputs[0].documents[0].notes[-1] == "reviewed"
    assert json.loads((tmp_path / "out" / "a.json").read_text())["notes"][-1] == "reviewed"  # what exporters got


def test_hook_runpipe_export(tmp_path):
    class Plugin:
        @hookimpl(wrapper=True)
        def runpipe_export(self, document, run):
            artifacts = yield
            return [a for a in artifacts if a.format == "json"]

    result = run_with(tmp_path, Plugin())
    assert [a.format for a in result.inputs[0].artifacts] == ["json"]
    assert (tmp_path / "out" / "a.txt").exists()  # the built-in wrote both; the wrapper reports one


# -- lifecycle notifications ---------------------------------------------------------------------


class Recorder:
    def __init__(self):
        self.events = []

    @hookimpl
    def runpipe_run_start(self, run, items):
        self.events.append(("run_start", run.run_id, [i.name for i in items]))

    @hookimpl
    def runpipe_stage_finish(self, stage, item, value, run):
        self.events.append(("stage_finish", stage, item.name, type(value).__name__))

    @hookimpl
    def runpipe_stage_error(self, stage, item, error, run):
        self.events.append(("stage_error", stage, item.name, type(error).__name__))

    @hookimpl
    def runpipe_input_finish(self, result, run):
        self.events.append(("input_finish", result.item.name, result.status))

    @hookimpl
    def runpipe_run_finish(self, result, run):
        self.events.append(("run_finish", result.run_id, result.ok))


@pytest.fixture
def recorded(tmp_path):
    (tmp_path / "bad.wav").write_bytes(b"not audio at all")
    recorder = Recorder()
    result = run_with(tmp_path, recorder, inputs=[str(tone_wav(tmp_path / "a.wav", 2)), str(tmp_path / "bad.wav")])
    return recorder.events, result


def test_hook_runpipe_run_start(recorded):
    events, result = recorded
    assert events[0][0] == "run_start" and events[0][1] == result.run_id and sorted(events[0][2]) == ["a.wav", "bad.wav"]


def test_hook_runpipe_stage_finish(recorded):
    events, _ = recorded
    assert [e[1:] for e in events if e[0] == "stage_finish" and e[2] == "a.wav"] == [
        ("normalize", "a.wav", "AudioFile"), ("analyze", "a.wav", "Analysis"),
        ("postprocess", "a.wav", "Document"), ("export", "a.wav", "list"),
    ]


def test_hook_runpipe_stage_error(recorded):
    events, _ = recorded
    assert [e for e in events if e[0] == "stage_error"] == [("stage_error", "normalize", "bad.wav", "MediaError")]


def test_hook_runpipe_input_finish(recorded):
    events, _ = recorded
    assert sorted(e[1:] for e in events if e[0] == "input_finish") == [("a.wav", "done"), ("bad.wav", "failed")]


def test_hook_runpipe_run_finish(recorded):
    events, result = recorded
    assert events[-1] == ("run_finish", result.run_id, False)


# -- the documentation follows the hooks -------------------------------------------------------------


def documented_signatures(text: str) -> dict[str, str]:
    return dict(re.findall(r"^### (runpipe_\w+)\(([^)]*)\)$", text, re.M))


def check_hooks_documented(text: str) -> None:
    """The meta-test: every hook has a section in ``text`` (docs/hooks.md) with its exact signature."""
    documented = documented_signatures(text)
    for name in hook_names():
        assert name in documented, f"{name} has no section in docs/hooks.md"
        arguments = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
        assert documented[name] == arguments, f"docs/hooks.md documents {name}({documented[name]}), the hook is {name}({arguments})"
    stale = sorted(set(documented) - set(hook_names()))
    assert not stale, f"docs/hooks.md documents hooks that do not exist: {stale}"


def test_every_hook_is_documented_with_its_signature():
    check_hooks_documented(DOCS.read_text(encoding="utf-8"))


def test_the_meta_test_fails_when_a_section_is_removed_or_its_signature_drifts():
    text = DOCS.read_text(encoding="utf-8")
    without = re.sub(r"^### runpipe_stage_error\(.*?(?=^### )", "", text, flags=re.M | re.S)
    assert documented_signatures(text).keys() - documented_signatures(without).keys() == {"runpipe_stage_error"}
    with pytest.raises(AssertionError, match="runpipe_stage_error has no section in docs/hooks.md"):
        check_hooks_documented(without)
    drifted = text.replace("### runpipe_export(document, run)", "### runpipe_export(document)")
    with pytest.raises(AssertionError, match=r"documents runpipe_export\(document\), the hook is runpipe_export\(document, run\)"):
        check_hooks_documented(drifted)
    with pytest.raises(AssertionError, match="hooks that do not exist: \\['runpipe_gone'\\]"):
        check_hooks_documented(text + "\n### runpipe_gone(run)\n")


def test_every_hook_has_a_test():
    tests = {name for name, _ in inspect.getmembers(sys.modules[__name__], inspect.isfunction)}
    missing = [name for name in hook_names() if f"test_hook_{name}" not in tests]
    assert not missing, f"hooks without a test_hook_<name> in tests/test_hooks.py: {missing}"


def test_every_example_in_the_hook_docs_registers(tmp_path):
    """Each section's example is a valid plugin: it imports and registers on an engine."""
    text = DOCS.read_text(encoding="utf-8")
    sections = re.split(r"^### ", text, flags=re.M)[1:]
    assert len(sections) == len(hook_names())
    for section in sections:
        name = section.split("(", 1)[0]
        (code,) = re.findall(r"```python\n(.*?)```", section, re.S)
        module = types.ModuleType(f"docs_example_{name}")
        exec(compile(code, f"docs/hooks.md:{name}", "exec"), module.__dict__)
        with make_engine([module]) as engine:
            assert engine.pm.get_hookcallers(module), f"the example for {name} implements no hook"
            assert name in {h.name for h in engine.pm.get_hookcallers(module)}
