"""Recordings with one talker per channel are analysed channel by channel (plugins/local/channels.py)."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest

from runpipe.model import AudioFile, MediaItem, Task
from runpipe.plugins.local.backend import LocalBackend

if LocalBackend.unavailable_reason():
    pytest.skip(LocalBackend.unavailable_reason(), allow_module_level=True)

from runpipe.plugins.local.audio import SAMPLE_RATE, load_audio, stream_windows
from runpipe.plugins.local.channels import ChannelSettings, talker_channels

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
TURNS = json.loads((SAMPLES / "podcast_sample.json").read_text())["turns"]


def write_stereo(path: Path, left: np.ndarray, right: np.ndarray) -> Path:
    length = max(left.size, right.size)
    both = np.zeros((length, 2), dtype=np.float32)
    both[: left.size, 0], both[: right.size, 1] = left, right
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes((np.clip(both, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def bursts(spans: list[tuple[float, float]], seconds: float, seed: int) -> np.ndarray:
    """Noise bursts (a stand-in for speech: loudness is all the channel check looks at)."""
    samples = np.random.default_rng(seed).standard_normal(int(seconds * SAMPLE_RATE)).astype(np.float32) * 1e-4
    for start, end in spans:
        first, last = int(start * SAMPLE_RATE), int(end * SAMPLE_RATE)
        samples[first:last] += 0.2 * np.random.default_rng(seed + 1).standard_normal(last - first).astype(np.float32)
    return samples


def test_a_mono_mix_copied_to_both_channels_is_one_stream(tmp_path):
    mix = bursts([(0.5, 2.0), (3.0, 4.5)], 6.0, seed=1)
    assert talker_channels(write_stereo(tmp_path / "copy.wav", mix, mix), 0.0, None) is None


def test_one_talker_nearer_one_microphone_is_one_stream(tmp_path):
    talker = bursts([(0.5, 2.0), (3.0, 4.5)], 6.0, seed=2)
    # 3 dB down on the far side: one room, two microphones.
    assert talker_channels(write_stereo(tmp_path / "room.wav", talker, talker * 10 ** (-3 / 20)), 0.0, None) is None


def test_a_talker_per_channel_keeps_its_own_speech_and_drops_the_other_talkers_bleed(tmp_path):
    left_talker = bursts([(0.5, 2.0), (4.0, 5.0)], 6.0, seed=3)
    right_talker = bursts([(2.5, 3.5), (4.5, 5.5)], 6.0, seed=5)
    bleed = 10 ** (-25 / 20)  # each microphone hears the other talker 25 dB down
    path = write_stereo(tmp_path / "call.wav", left_talker + bleed * right_talker, right_talker + bleed * left_talker)
    talkers = talker_channels(path, 0.0, None)
    assert talkers is not None and talkers.count == 2
    # The regions a VAD might find on the left channel: its talker's, and the right talker's bleed.
    found = [(0.5, 2.0), (2.5, 3.5), (4.0, 5.0)]
    assert talkers.own_regions(0, found, 0.0, ChannelSettings()) == [(0.5, 2.0), (4.0, 5.0)]
    # The right channel's, seen from a window that starts 1 s into the recording: the last
    # region is the right talker's, with the left talker's bleed before it (4.0-4.5 s).
    found = [(-0.5, 1.0), (1.5, 2.5), (3.0, 4.5)]
    assert talkers.own_regions(1, found, 1.0, ChannelSettings()) == [(1.5, 2.5), (3.0, 4.5)]


def test_a_window_of_one_channel_holds_that_channel_only(tmp_path):
    left, right = bursts([(0.5, 1.0)], 2.0, seed=7), bursts([(1.2, 1.8)], 2.0, seed=9)
    path = write_stereo(tmp_path / "two.wav", left, right)
    (window,) = stream_windows(path, channel=1)
    assert np.allclose(window.samples, right, atol=1e-4)
    assert np.allclose(load_audio(path), (left + right) / 2, atol=1e-3)


def sample_turn(index: int) -> np.ndarray:
    turn = TURNS[index]
    return load_audio(SAMPLES / "podcast_sample.ogg", turn["start"], turn["end"] - turn["start"])


@pytest.mark.local_models
def test_two_talkers_speaking_at_once_on_their_own_channels_are_both_heard(tmp_path):
    """Mixed to mono, the sample's first two turns spoken over each other would be one voice."""
    first, second = sample_turn(0), sample_turn(1)
    path = write_stereo(tmp_path / "overlap.wav", first, np.concatenate([np.zeros(SAMPLE_RATE, np.float32), second]))
    audio = AudioFile(MediaItem(str(path), "file", path.name), path, "audio/wav", None, "test")
    result = LocalBackend({}).analyze(audio, Task(name="transcript", prompt="Transcribe.", schema_name="transcript", schema={}, options={}))
    by_speaker: dict[str, str] = {}
    for segment in result.data["segments"]:
        by_speaker[segment["speaker"]] = by_speaker.get(segment["speaker"], "") + " " + segment["content"].lower()
    assert len(by_speaker) == 2
    texts = sorted(by_speaker.values())
    assert any("welcome back to the show" in t for t in texts) and any("thanks for having me" in t for t in texts)
