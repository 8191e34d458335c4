from pathlib import Path

import pytest
import yaml

from runpipe.errors import PipelineConfigError
from runpipe.paths import builtin_pipelines_dir
from runpipe.pipeline.loader import load_pipeline
from runpipe.pipeline.spec import Pipeline
from runpipe.testing import make_engine

BUILTINS = sorted(builtin_pipelines_dir().glob("*.yaml"))


def test_all_builtin_pipelines_are_shipped():
    assert {p.stem for p in BUILTINS} >= {"podcast", "describe", "translate", "meeting"}


@pytest.mark.parametrize("path", BUILTINS, ids=lambda p: p.stem)
def test_builtin_pipelines_validate_and_round_trip(path):
    with make_engine() as engine:
        pipeline = engine.load(path)
    again = Pipeline.from_dict(pipeline.to_dict(), source=pipeline.source)
    assert again == pipeline
    assert again.to_dict() == pipeline.to_dict()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


GOOD = """\
name: t
stages:
  analyze:
    tasks:
      - prompt: transcript
      - prompt: describe
        name: second
        schema: description
"""


def test_error_names_file_path_inside_and_line(tmp_path):
    path = write(tmp_path, GOOD.replace("schema: description", "schema: 42"))
    with pytest.raises(PipelineConfigError) as info:
        load_pipeline(path)
    message = str(info.value)
    assert f"{path}:8" in message
    assert "stages.analyze.tasks[1].schema" in message
    assert "is not of type 'string'" in message


def test_unknown_keys_are_errors_not_ignored(tmp_path):
    path = write(tmp_path, GOOD.replace("name: t\n", "name: t\nconcurency: 3\n"))
    with pytest.raises(PipelineConfigError, match=r"unknown key\(s\) 'concurency'"):
        load_pipeline(path)


def test_unknown_key_deep_inside(tmp_path):
    path = write(tmp_path, GOOD.replace("      - prompt: transcript\n", "      - prompt: transcript\n        modle: x\n"))
    with pytest.raises(PipelineConfigError) as info:
        load_pipeline(path)
    assert "stages.analyze.tasks[0]" in str(info.value) and "'modle'" in str(info.value)
    assert f"{path}:6" in str(info.value)


def test_yaml_is_loaded_safely(tmp_path):
    path = write(tmp_path, "name: !!python/object/apply:os.system ['echo pwned']\nstages: {}\n")
    with pytest.raises(PipelineConfigError, match="not valid YAML"):
        load_pipeline(path)


def test_missing_schema_file_is_named(tmp_path):
    path = write(tmp_path, GOOD.replace("schema: description", "schema: schemas/missing.json"))
    with make_engine() as engine, pytest.raises(PipelineConfigError) as info:
        engine.load(path)
    assert "stages.analyze.tasks[1].schema" in str(info.value)
    assert "missing.json does not exist" in str(info.value)


def test_schema_by_path_is_relative_to_the_pipeline(tmp_path):
    (tmp_path / "mine.json").write_text('{"type": "object", "properties": {"answer": {"type": "string"}}}')
    path = write(tmp_path, "name: t\nstages:\n  analyze:\n    tasks:\n      - prompt: {text: Say hi}\n        schema: ./mine.json\n")
    with make_engine() as engine:
        pipeline = engine.load(path)
        from runpipe.tasks import resolve_tasks

        (task,) = resolve_tasks(pipeline, engine.registries.prompts)
    assert task.schema["properties"] == {"answer": {"type": "string"}}
    assert task.prompt == "Say hi"


@pytest.mark.parametrize(
    "change, expected",
    [
        (("prompt: transcript", "prompt: nonsense"), "unknown prompt 'nonsense'"),
        (("name: t\n", "name: t\nstages_typo: 1\n"), "unknown key"),
        (("      - prompt: describe\n", "      - prompt: describe\n        backend: warp\n"), "unknown backend 'warp'"),
        (("      - prompt: describe\n", "      - prompt: describe\n        time_range: '03:00-02:00'\n"), "ends before it starts"),
    ],
)
def test_names_are_checked_against_plugins(tmp_path, change, expected):
    path = write(tmp_path, GOOD.replace(*change))
    with make_engine() as engine, pytest.raises(PipelineConfigError, match=expected):
        engine.load(path)


def test_unknown_export_format_and_options(tmp_path):
    text = GOOD + "  export:\n    formats: [json, {srt: {max_line_chars: 32, colour: red}}]\n"
    with make_engine() as engine, pytest.raises(PipelineConfigError) as info:
        engine.load(write(tmp_path, text))
    assert "stages.export.formats[1]" in str(info.value) and "colour" in str(info.value)
    with make_engine() as engine, pytest.raises(PipelineConfigError, match="unknown export format 'docx'"):
        engine.load(write(tmp_path, GOOD + "  export:\n    formats: [docx]\n"))


def test_pipeline_from_dict_for_embedding():
    data = yaml.safe_load(GOOD)
    with make_engine() as engine:
        pipeline = engine.load_dict(data)
    assert [t.task_name for t in pipeline.analyze.tasks] == ["transcript", "second"]
