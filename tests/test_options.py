"""One options object per component: validated by the engine, printed by `runpipe schema NAME`."""

import json
import os
import subprocess
import sys
from dataclasses import dataclass

import pytest

from runpipe.errors import PipelineConfigError
from runpipe.options import option, options_schema, parse_options
from runpipe.testing import make_engine


@dataclass(frozen=True)
class Example:
    ratio: float = option(0.5, "a share", minimum=0, maximum=1)
    count: int = option(3, "how many", minimum=1)
    label: str | None = option(None, "a name, or none")
    loud: bool = option(False, "shout")


@pytest.mark.parametrize("values, message", [
    ({"ratio": 2}, "option ratio must be between 0 and 1, got 2"),
    ({"count": 0}, "option count must be at least 1, got 0"),
    ({"count": 1.5}, "option count must be an integer, got 1.5"),
    ({"loud": 1}, "option loud must be true or false, got 1"),
    ({"ratio": True}, "option ratio must be a number, got True"),
    ({"label": 3}, "option label must be a string or null, got 3"),
    ({"colour": "red"}, "unknown option\\(s\\) colour; known options: count, label, loud, ratio"),
])
def test_bad_values_are_errors_naming_the_option(values, message):
    with pytest.raises(PipelineConfigError, match=f"^thing x: {message}$"):
        parse_options(Example, values, "thing x")


def test_good_values_become_typed_settings():
    assert parse_options(Example, {"ratio": 1, "label": None, "loud": True}, "x") == Example(ratio=1.0, loud=True)
    assert isinstance(parse_options(Example, {"ratio": 1}, "x").ratio, float)


def test_the_schema_carries_types_defaults_docs_and_ranges():
    schema = options_schema(Example, "t")
    assert schema["additionalProperties"] is False
    assert schema["properties"]["ratio"] == {"type": "number", "default": 0.5, "description": "a share", "minimum": 0, "maximum": 1}
    assert schema["properties"]["label"]["type"] == ["string", "null"]


def test_the_engine_rejects_a_bad_option_where_the_pipeline_has_it():
    spec = {"name": "t", "stages": {"analyze": {"tasks": [{"prompt": "transcript"}]},
                                    "postprocess": {"steps": [{"speakers": {"threshold": 1.5}}]}}}
    with make_engine() as engine, pytest.raises(PipelineConfigError, match=r"stages.postprocess.steps\[0\]: post-processor speakers: option threshold must be between -1 and 1, got 1.5"):
        engine.load_dict(spec)
    spec["stages"]["export"] = {"formats": [{"txt": {"timestamps": "no"}}]}
    spec["stages"]["postprocess"]["steps"] = []
    with make_engine() as engine, pytest.raises(PipelineConfigError, match=r"stages.export.formats\[0\]: export format txt: option timestamps must be true or false"):
        engine.load_dict(spec)


def test_runpipe_schema_prints_a_components_options(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "runpipe", *a], capture_output=True, text=True, cwd=tmp_path,
                                    env={**os.environ, "RUNPIPE_USER_PATH": str(tmp_path)}, timeout=120)
    out = run("schema", "speakers")
    assert out.returncode == 0, out.stderr
    schema = json.loads(out.stdout)
    assert schema["properties"]["threshold"]["default"] == 0.55 and schema["properties"]["threshold"]["maximum"] == 1
    assert "seconds_per_segment" in schema["properties"]
    out = run("schema", "nope")
    assert out.returncode == 2 and "no component called 'nope'; registered: " in out.stderr and "speakers" in out.stderr
    out = run("schema", "normalize")  # a stage's settings live in the pipeline's schema
    assert out.returncode == 0, out.stderr
    schema = json.loads(out.stdout)
    assert schema["properties"]["sample_rate"] == {"type": "integer", "minimum": 8000, "maximum": 48000}
    assert schema["additionalProperties"] is False
    out = run("schema", "analyze")
    assert "min_split_seconds" in json.loads(out.stdout)["properties"]["chunking"]["properties"]


def test_every_builtin_component_declares_a_documented_options_object():
    import dataclasses

    with make_engine() as engine:
        for kind in ("backends", "postprocessors", "exporters", "executors", "sources"):
            registry = getattr(engine.registries, kind)
            for name in registry.names():
                registration = registry.registration(name)
                component = registration.value
                if not registration.plugin.startswith("runpipe.plugins."):
                    continue
                assert not component.option_names, f"{kind} {name} lists bare option names instead of an Options object"
                if component.Options is None:  # takes no options at all
                    with pytest.raises(PipelineConfigError, match="unknown option"):
                        component({"anything": 1})
                    continue
                for field in dataclasses.fields(component.Options):
                    assert field.metadata.get("doc"), f"{kind} {name}: option {field.name} has no documentation"


@pytest.mark.parametrize("fmt, options, message", [
    ("json", {"indent": -1}, "export format json: option indent must be at least 0, got -1"),
    ("md", {"timestamps": "no"}, "export format md: option timestamps must be true or false, got 'no'"),
    ("html", {"title": 3}, "export format html: option title must be a string or null, got 3"),
    ("srt", {"max_lines": 0}, "export format srt: option max_lines must be at least 1, got 0"),
])
def test_exporter_options_are_checked_by_the_engine(fmt, options, message):
    with make_engine() as engine:
        with pytest.raises(PipelineConfigError, match=message):
            engine.component("exporters", fmt, options)
