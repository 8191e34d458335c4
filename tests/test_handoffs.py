"""Typed hand-offs: what one plugin tells another travels in fields of the frozen values, not in
provenance keys; a backend declares which schemas it fills."""

import dataclasses
import json

import pytest

from answers import TRANSCRIPT
from runpipe.errors import PipelineConfigError
from runpipe.model import TimeRange
from runpipe.serialize import analysis_from_dict, analysis_to_dict, document_from_dict, document_to_dict
from runpipe.testing import ScriptedBackend, ScriptedBackendPlugin, make_engine, tone_wav


def run_windows(tmp_path, time_range=None):
    answer = {"summary": "", "segments": [{**TRANSCRIPT["segments"][0], "timestamp": "00:01"}]}
    ScriptedBackend.queue(answer, answer, answer)
    task = {"prompt": "transcript", **({"time_range": time_range} if time_range else {})}
    spec = {"name": "t", "stages": {"analyze": {"backend": "scripted", "chunking": {"max_seconds": 10, "overlap_seconds": 1},
                                                "tasks": [task]},
                                    "postprocess": {"steps": []}, "export": {"formats": ["json"]}}}
    with make_engine([ScriptedBackendPlugin()]) as engine:
        result = engine.run(engine.load_dict(spec), [str(tone_wav(tmp_path / "a.wav", 25))], output_dir=tmp_path / "out")
    (document,) = result.inputs[0].documents
    return document, json.loads((tmp_path / "out" / "a.json").read_text())


def test_windows_and_time_range_are_fields_that_survive_the_json_result(tmp_path):
    document, data = run_windows(tmp_path, time_range="00:02-00:24")
    assert len(document.windows) >= 2 and all(isinstance(w, TimeRange) for w in document.windows)
    assert document.windows[0].start == 2.0 and document.windows[-1].end == pytest.approx(24.0)
    assert document.time_range == TimeRange(2.0, 24.0)
    assert "windows" not in document.provenance and "time_range" not in document.provenance
    assert data["windows"] == [[w.start, w.end] for w in document.windows] and data["time_range"] == [2.0, 24.0]
    again = document_from_dict(data)
    assert again.windows == document.windows and again.time_range == document.time_range
    assert again == dataclasses.replace(document, audio=again.audio)  # everything else round-trips too


def test_stored_analyses_keep_their_windows():
    from runpipe.model import Analysis

    analysis = Analysis(task="t", data={}, backend="b", model="m", windows=(TimeRange(0, 5), TimeRange(4, None)))
    assert analysis_from_dict(json.loads(json.dumps(analysis_to_dict(analysis)))) == analysis


def test_validate_rejects_a_schema_no_available_backend_can_answer(tmp_path):
    (tmp_path / "dogs.schema.json").write_text(json.dumps({"type": "object", "properties": {"dogs": {"type": "integer"}}}))
    spec = {"name": "t", "stages": {"analyze": {"backend": "local", "tasks": [{"prompt": {"text": "Count the dogs."},
            "schema": "dogs.schema.json"}]}}}
    auto = {**spec, "stages": {"analyze": {**spec["stages"]["analyze"], "backend": "auto"}}}
    with make_engine() as engine:
        with pytest.raises(PipelineConfigError, match=r"tasks\[0\]: no available backend can answer schema 'dogs' \(local fills description, meeting, transcript, translation\)"):
            engine.load_dict(spec, base_dir=tmp_path)
        engine.load_dict(auto, base_dir=tmp_path)  # gemini takes part in auto and fills any schema
    with make_engine(blocked=["gemini"]) as engine:
        with pytest.raises(PipelineConfigError, match="no available backend can answer schema 'dogs'"):
            engine.load_dict(auto, base_dir=tmp_path)


def test_retime_keeps_segments_by_their_timing_evidence_not_the_backend_name(tmp_path):
    from runpipe.plugins.retime.step import RetimeStep

    document, _ = run_windows(tmp_path)
    measured = tuple(dataclasses.replace(s, timing="aligned") for s in document.segments)
    kept = dataclasses.replace(document, backend="anything", segments=measured)
    assert RetimeStep().process(kept) is kept
    # the offline backend's name earns nothing: times the model wrote are re-timed (here: no
    # local audio to align against, so they are marked approximate)
    remote = dataclasses.replace(document, backend="local", audio=dataclasses.replace(document.audio, path=None))
    assert {s.timing for s in RetimeStep().process(remote).segments} == {"approximate"}
