"""One voice, one label across the windows of a long input (issue 5: labels reconciled across chunks)."""

import json

import numpy as np
import pytest

from conftest import SAMPLE
from runpipe.plugins.speakers import match_voices
from runpipe.testing import ScriptedBackendPlugin, make_engine
from runpipe.timecode import format_clock


def unit(*values):
    vector = np.array(values, dtype=float)
    return vector / np.linalg.norm(vector)


def test_labels_swapped_by_a_later_window_are_matched_by_voice():
    ada, grace = unit(1, 0, 0), unit(0, 1, 0)
    voices = {(0, "Speaker 1"): ada, (0, "Speaker 2"): grace, (1, "Speaker 1"): grace, (1, "Speaker 2"): ada * 0.9 + grace * 0.1}
    mapping = match_voices(voices, threshold=0.55)
    assert mapping[(1, "Speaker 1")] == "Speaker 2" and mapping[(1, "Speaker 2")] == "Speaker 1"


def test_a_new_voice_gets_a_new_label():
    voices = {(0, "Speaker 1"): unit(1, 0, 0), (0, "Speaker 2"): unit(0, 1, 0), (1, "Speaker 1"): unit(1, 0.1, 0), (1, "Speaker 2"): unit(0, 0, 1)}
    mapping = match_voices(voices, threshold=0.55)
    assert mapping[(1, "Speaker 1")] == "Speaker 1" and mapping[(1, "Speaker 2")] == "Speaker 3"


def test_names_a_backend_gave_are_kept_for_the_same_voice():
    voices = {(0, "Ada"): unit(1, 0), (1, "Speaker 1"): unit(1, 0.05)}
    assert match_voices(voices, threshold=0.55)[(1, "Speaker 1")] == "Ada"


@pytest.mark.local_models
def test_windows_of_the_sample_keep_one_label_per_voice(tmp_path):
    turns = json.loads(SAMPLE.with_suffix(".json").read_text())["turns"]
    english = [t for t in turns if t["voice"].startswith("en")]
    pipeline = {"name": "t", "stages": {
        "analyze": {"backend": "scripted", "chunking": {"max_seconds": 15, "overlap_seconds": 0.5, "parallel": 1},
                    "tasks": [{"prompt": "transcript"}]},
        "export": {"formats": ["json"]}}}

    from runpipe.chunking import plan_windows
    from runpipe.media import Target, normalize
    from runpipe.model import TimeRange
    from runpipe.plugins.sources import _file_item

    audio = normalize(_file_item(SAMPLE), Target())
    windows = plan_windows(audio, TimeRange(0, audio.duration), 15, 0.5)
    assert len(windows) == 3
    answers = []
    for index, window in enumerate(windows):
        inside = [t for t in english if window.start <= t["start"] < window.end]
        voices = list(dict.fromkeys(t["voice"] for t in inside))
        if index == 2:
            voices.reverse()  # the last window's backend numbers the voices the other way round
        answers.append({"summary": "", "segments": [
            {"speaker": f"Speaker {voices.index(t['voice']) + 1}", "timestamp": format_clock(t["start"] - window.start),
             "content": t["text"], "language": "English", "language_code": "en", "translation": "", "emotion": "neutral"}
            for t in inside]})
    backend_plugin = ScriptedBackendPlugin(*answers)
    with make_engine([backend_plugin], postprocess=True) as engine:
        result = engine.run(engine.load_dict(pipeline), [str(SAMPLE)], output_dir=tmp_path / "out")
    (document,) = result.inputs[0].documents
    labels = {t["voice"]: set() for t in english}
    for segment in document.segments:
        voice = min(english, key=lambda t: abs(t["start"] - segment.start))["voice"]
        labels[voice].add(segment.speaker)
    assert labels == {"en-us+m3": {"Speaker 1"}, "en+f3": {"Speaker 2"}}
    assert any("matched by voice across 3 windows" in note for note in document.notes)
