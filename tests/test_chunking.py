"""Long audio: windows end in silences, answers are stitched onto one timeline without duplicates."""

import json
from pathlib import Path

import numpy as np
import pytest

from runpipe.chunking import choose_cuts, find_silences, plan_windows, stitch
from runpipe.media import Target, normalize
from runpipe.model import Analysis, TimeRange, Usage
from runpipe.plugins.sources import _file_item
from runpipe.testing import ScriptedBackendPlugin, make_engine, write_wav


def tones_with_gaps(path: Path, pattern: list[tuple[str, float]], rate: int = 16000) -> Path:
    """('tone'|'gap', seconds) pieces -> a WAV file."""
    pieces = []
    for kind, seconds in pattern:
        n = int(seconds * rate)
        pieces.append(0.3 * np.sin(2 * np.pi * 220 * np.arange(n) / rate) if kind == "tone" else np.zeros(n))
    return write_wav(path, np.concatenate(pieces), rate)


def test_cuts_fall_in_silences():
    silences = [(9.0, 10.0), (18.5, 19.5), (31.0, 32.0)]
    assert choose_cuts(TimeRange(0, 40), 20, silences) == [18.0 + 1.0, 31.5]


def test_hard_cut_when_no_silence():
    assert choose_cuts(TimeRange(0, 50), 20, []) == [20, 40]


def test_plan_windows_on_real_audio(tmp_path):
    path = tones_with_gaps(tmp_path / "a.wav", [("tone", 8), ("gap", 1), ("tone", 8), ("gap", 1), ("tone", 8)])
    audio = normalize(_file_item(path), Target())
    silences = find_silences(audio)
    assert [round(a) for a, _ in silences] == [8, 17]
    windows = plan_windows(audio, TimeRange(0, audio.duration), 12, overlap=0.5)
    assert len(windows) == 3
    assert windows[0].start == 0 and windows[0].end == pytest.approx(9.0, abs=0.2)
    assert windows[1].start == pytest.approx(8.0, abs=0.2)
    assert plan_windows(audio, TimeRange(0, audio.duration), 60, overlap=0.5) == [None]


def seg(ts: str, text: str, speaker: str = "Speaker 1") -> dict:
    return {"speaker": speaker, "timestamp": ts, "content": text, "language": "English", "language_code": "en", "translation": "", "emotion": "neutral"}


def test_stitch_shifts_and_removes_overlap_duplicates():
    windows = [TimeRange(0, 11), TimeRange(9, 21)]  # cut at 10, 1 s overlap each side
    first = Analysis("t", {"summary": "Part one.", "segments": [seg("00:01", "a"), seg("00:09", "b"), seg("00:10", "dup")]}, "x", "m", Usage(output_tokens=5, requests=1), offset=0)
    second = Analysis("t", {"summary": "Part two.", "segments": [seg("00:00", "dup"), seg("00:02", "c")]}, "x", "m", Usage(output_tokens=7, requests=1), offset=9)
    merged = stitch([first, second], windows)
    assert [(s["timestamp"], s["content"]) for s in merged.data["segments"]] == [("00:01", "a"), ("00:09", "b"), ("00:11", "c")]
    assert merged.data["summary"] == "Part one.\n\nPart two."
    assert merged.usage.output_tokens == 12 and merged.usage.requests == 2
    assert merged.offset == 0 and merged.windows == (TimeRange(0, 11), TimeRange(9, 21))


@pytest.mark.local_models  # the retime step re-times the answer with Whisper
def test_long_audio_is_chunked_end_to_end_and_resumes(tmp_path):
    path = tones_with_gaps(tmp_path / "long.wav", [("tone", 8), ("gap", 1), ("tone", 8), ("gap", 1), ("tone", 8)])
    pipeline = {"name": "t", "stages": {"analyze": {"backend": "scripted", "chunking": {"max_seconds": 12, "overlap_seconds": 0.5},
                                                      "tasks": [{"prompt": "transcript"}]}, "export": {"formats": ["json"]}}}
    backend_plugin = ScriptedBackendPlugin(*({"summary": f"part {i}", "segments": [seg("00:02", f"words {i}")]} for i in range(3)))
    with make_engine([backend_plugin]) as engine:
        result = engine.run(engine.load_dict(pipeline), [str(path)], output_dir=tmp_path / "out")
        assert result.ok, result.inputs[0].error
        assert len(backend_plugin.calls) == 3
        assert all(0 < audio.duration <= 12.6 for audio, _, _ in backend_plugin.calls)
        data = json.loads((tmp_path / "out" / "long.json").read_text())
        starts = [s["start"] for s in data["segments"]]
        assert starts == pytest.approx([2.0, 2.0 + 8.0, 2.0 + 17.0], abs=0.3)
        # a rerun repeats no analysis: every window comes from the run store
        engine.run(engine.load_dict(pipeline), [str(path)], output_dir=tmp_path / "out")
        assert len(backend_plugin.calls) == 3
        engine.run(engine.load_dict(pipeline), [str(path)], output_dir=tmp_path / "out", force=True)
        assert len(backend_plugin.calls) == 6


def test_time_range_task_returns_original_timeline(tmp_path):
    path = tones_with_gaps(tmp_path / "a.wav", [("tone", 20)])
    pipeline = {"name": "t", "stages": {"analyze": {"backend": "scripted", "tasks": [{"prompt": "transcript", "time_range": "00:05-00:15"}]},
                                        "export": {"formats": ["json"]}}}
    backend_plugin = ScriptedBackendPlugin({"summary": "", "segments": [seg("00:01", "in range"), seg("00:12", "after the range")]})
    with make_engine([backend_plugin]) as engine:
        engine.run(engine.load_dict(pipeline), [str(path)], output_dir=tmp_path / "out")
    (audio, _, _), = backend_plugin.calls
    assert audio.duration == pytest.approx(10.0)
    data = json.loads((tmp_path / "out" / "a.json").read_text())
    assert [(s["start"], s["content"]) for s in data["segments"]] == [(6.0, "in range")]
