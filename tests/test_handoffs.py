"""Typed hand-offs: what one plugin tells another travels in fields of the frozen values, not in
provenance keys; a backend declares which schemas it fills."""

import dataclasses
import json

import pytest

from answers import TRANSCRIPT
from runpipe.errors import PipelineConfigError
from runpipe.model import TimeRange
from runpipe.serialize import analysis_from_dict, analysis_to_dict, document_from_dict, document_to_dict
from runpipe.testing import ScriptedBackendPlugin, make_engine, tone_wav


def run_windows(tmp_path, time_range=None):
    answer = {"summary": "", "segments": [{**TRANSCRIPT["segments"][0], "timestamp": "00:01"}]}
    backend_plugin = ScriptedBackendPlugin(answer, answer, answer)
    task = {"prompt": "transcript", **({"time_range": time_range} if time_range else {})}
    spec = {"name": "t", "stages": {"analyze": {"backend": "scripted", "chunking": {"max_seconds": 10, "overlap_seconds": 1},
                                                "tasks": [task]},
                                    "postprocess": {"steps": []}, "export": {"formats": ["json"]}}}
    with make_engine([backend_plugin]) as engine:
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


# -- the answer is parsed once into typed values -------------------------------------------------

MEETING = {
    "summary": "Budget meeting.",
    "decisions": [{"decision": "Ship in May", "speaker": "Speaker 2", "timestamp": "00:03"}],
    "action_items": [{"task": "Write the plan", "owner": "Speaker 1", "due": None, "timestamp": "00:04", "room": "B"}],
    "segments": [{"speaker": "Speaker 1", "timestamp": "00:01", "content": "Let us start.", "language_code": "en"}],
}


def test_answer_items_are_typed_values_and_the_json_result_keeps_them_as_answered(tmp_path):
    from runpipe.model import AnswerItem

    spec = {"name": "t", "stages": {"analyze": {"backend": "scripted", "tasks": [{"prompt": "meeting"}]},
                                    "postprocess": {"steps": []}, "export": {"formats": ["json", "md"]}}}
    with make_engine([ScriptedBackendPlugin(MEETING)]) as engine:
        result = engine.run(engine.load_dict(spec), [str(tone_wav(tmp_path / "a.wav", 6))], output_dir=tmp_path / "out")
    (document,) = result.inputs[0].documents
    assert [f.name for f in document.answer] == ["summary", "decisions", "action_items"]
    assert document.summary == "Budget meeting."
    (decision,) = document.items("decisions")
    assert isinstance(decision, AnswerItem)
    assert (decision.text, decision.speaker, decision.start, decision.timestamp) == ("Ship in May", "Speaker 2", 3.0, "00:03")
    (action,) = document.items("action_items")
    assert (action.text, action.owner, action.due, action.extras) == ("Write the plan", "Speaker 1", None, {"room": "B"})
    data = json.loads((tmp_path / "out" / "a.json").read_text())
    assert {k: data[k] for k in ("summary", "decisions", "action_items")} == {k: MEETING[k] for k in ("summary", "decisions", "action_items")}
    assert document_from_dict(data).answer == document.answer
    assert "- [00:04] Write the plan (owner: Speaker 1)" in (tmp_path / "out" / "a.md").read_text()


def test_answer_items_of_a_time_range_are_on_the_inputs_timeline(tmp_path):
    events = {"description": "A door, then music.", "answer": "", "events": [
        {"timestamp": "00:01", "end_timestamp": "00:02", "kind": "sound", "description": "a door"},
        {"timestamp": "00:03", "kind": "music", "description": "a tune", "mood": "calm", "energy": "low"}]}
    spec = {"name": "t", "stages": {"analyze": {"backend": "scripted", "tasks": [{"prompt": "describe", "time_range": "00:10-00:20"}]},
                                    "postprocess": {"steps": []}, "export": {"formats": ["json", "html"]}}}
    with make_engine([ScriptedBackendPlugin(events)]) as engine:
        result = engine.run(engine.load_dict(spec), [str(tone_wav(tmp_path / "a.wav", 25))], output_dir=tmp_path / "out")
    assert result.ok, result.inputs[0].error
    (document,) = result.inputs[0].documents
    door, tune = document.items("events")
    assert (door.start, door.end, door.timestamp, door.end_timestamp) == (11.0, 12.0, "00:11", "00:12")
    assert (tune.start, tune.kind, tune.feelings.mood, tune.feelings.energy) == (13.0, "music", "calm", "low")
    data = json.loads((tmp_path / "out" / "a.json").read_text())
    assert [e["timestamp"] for e in data["events"]] == ["00:11", "00:13"]
    assert document_from_dict(data).items("events") == document.items("events")
    assert 'data-seek="11' in (tmp_path / "out" / "a.html").read_text()


def test_answers_to_questions_are_typed_with_their_moments(tmp_path):
    from runpipe.plugins.exporters.markdown import MarkdownExporter
    from runpipe.plugins.html_report import HtmlExporter
    from runpipe.testing import make_document

    answers = {"answers": [{"question": "Who speaks first?", "answer": "Ada.", "prompt_tokens": 900,
                            "moments": [{"timestamp": "00:04", "quote": "Welcome back", "start": 4.2, "timing": "aligned"}]}]}
    document = make_document(fields=answers)
    (item,) = document.items("answers")
    assert (item.question, item.text, item.extras) == ("Who speaks first?", "Ada.", {"prompt_tokens": 900})
    (moment,) = item.moments
    assert (moment.text, moment.start, moment.timestamp, moment.timing) == ("Welcome back", 4.2, "00:04", "aligned")
    assert "**Who speaks first?**\n\nAda.\n\n- [00:04] Welcome back" in MarkdownExporter().render(document)
    html = HtmlExporter({"embed_audio": False}).render(document)
    assert '<span class="item-question">Who speaks first?</span>' in html and 'data-seek="4.2' in html
