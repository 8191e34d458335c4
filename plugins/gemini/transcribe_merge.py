"""Laying the general model's understanding onto Gemini 3.5 Transcribe's timeline: pure functions.

The transcript decides the segments: one per utterance (a speaker turn), with its text, start,
end, words, speaker and language. The general model's segments carry what the transcript does
not (translation, emotion, any other field the task's schema asks for); they are aligned by text
to the transcript's words with the re-timing aligner (so how far their MM:SS timestamps drifted
does not matter), and each goes to the utterance it overlaps most. An utterance takes the other
fields of the general segment that overlaps it most, and the translations of all the general
segments that went to it, in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from runpipe.model import Segment
from runpipe.plugins.local.languages import language_name
from runpipe.plugins.retime.align import TimedWord, retime_segments
from runpipe.timecode import format_clock, parse_clock


@dataclass(frozen=True, slots=True)
class Utterance:
    """One speaker turn of the transcript, in seconds on the timeline of the analysed audio."""

    text: str
    start: float
    end: float
    speaker: str | None  # "spk_1", ... (with diarization)
    language_code: str | None  # BCP-47 as the model gives it, e.g. "en-US"
    words: tuple[TimedWord, ...]


def wants_timeline(schema: Mapping[str, Any]) -> bool:
    """Whether answers of ``schema`` have transcript segments a timeline can replace."""
    segments = (schema.get("properties") or {}).get("segments") or {}
    items = segments.get("items") or {}
    return (
        segments.get("type") == "array"
        and "content" in (items.get("properties") or {})
        and items.get("additionalProperties", True) is not False  # start, end and words go alongside
    )


def _span(item: Mapping[str, Any]) -> float:
    try:
        return parse_clock(str(item.get("timestamp", "")))
    except ValueError:
        return 0.0


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return min(a[1], b[1]) - max(a[0], b[0])


def _closest(span: tuple[float, float], utterances: Sequence[Utterance]) -> int:
    """The utterance ``span`` overlaps most; failing any overlap, the nearest one."""
    return max(range(len(utterances)), key=lambda i: _overlap(span, (utterances[i].start, utterances[i].end)))


def _plainest(field: Mapping[str, Any]) -> str:
    choices = field.get("enum") or ["neutral"]
    return "neutral" if "neutral" in choices else str(choices[0])


def merge(understanding: Mapping[str, Any], utterances: Sequence[Utterance], schema: Mapping[str, Any], duration: float) -> dict[str, Any]:
    """The general model's answer with its segments rebuilt on the transcript's timeline."""
    general = list(understanding.get("segments") or [])
    items = ((schema.get("properties") or {}).get("segments") or {}).get("items") or {}
    properties, required = items.get("properties") or {}, set(items.get("required") or ())
    words = [w for u in utterances for w in u.words]
    spans: list[tuple[float, float]] = []
    if general and words:
        placed, _ = retime_segments(
            [Segment(start=_span(g), end=None, content=str(g.get("content", ""))) for g in general],
            words, [(u.start, u.end) for u in utterances], duration,
        )
        spans = [(s.start, s.end if s.end is not None else s.start) for s in placed]
    owner = [_closest(span, utterances) for span in spans]
    segments = []
    for index, utterance in enumerate(utterances):
        here = (utterance.start, utterance.end)
        best = max(range(len(spans)), key=lambda j: _overlap(spans[j], here), default=None)
        item: dict[str, Any] = dict(general[best]) if best is not None else {}
        mine = [general[j] for j, o in enumerate(owner) if o == index] or ([general[best]] if best is not None else [])
        iso = utterance.language_code.split("-")[0].lower() if utterance.language_code else item.get("language_code")
        item.update(
            content=utterance.text,
            timestamp=format_clock(utterance.start),
            start=round(utterance.start, 3),
            end=round(utterance.end, 3),
            words=[{"text": w.text, "start": round(w.start, 3), "end": round(w.end, 3)} for w in utterance.words],
        )
        if utterance.speaker or "speaker" in properties:
            item["speaker"] = utterance.speaker or item.get("speaker") or ""
        if iso and "language_code" in properties:
            item["language_code"] = iso
        if iso and "language" in properties:
            item["language"] = language_name(iso)
        if "translation" in properties:
            item["translation"] = " ".join(t for t in (str(g.get("translation") or "").strip() for g in mine) if t)
        if "emotion" in required and "emotion" not in item:
            item["emotion"] = _plainest(properties["emotion"])  # no general segment to judge it by
        segments.append(item)
    moved = _moved_moments(understanding, [_span(g) for g in general], [a for a, _ in spans])
    return {**understanding, **moved, "segments": segments}


def _moved_moments(understanding: Mapping[str, Any], said: Sequence[float], placed: Sequence[float]) -> dict[str, Any]:
    """The answer's other timestamped items (a meeting's decisions and action items) moved as the
    general segment they fall in was moved: the drift is the segment's, not the item's own."""
    order = sorted(range(len(placed)), key=lambda i: said[i])
    moved: dict[str, Any] = {}
    for key, value in understanding.items():
        if key == "segments" or not isinstance(value, list) or not order:
            continue
        items = []
        for item in value:
            if isinstance(item, Mapping) and isinstance(item.get("timestamp"), str):
                try:
                    t = parse_clock(item["timestamp"])
                except ValueError:
                    items.append(item)
                    continue
                # the last segment said at or before it (else the first)
                host = next((i for i in reversed(order) if said[i] <= t), order[0])
                item = {**item, "timestamp": format_clock(max(0.0, placed[host] + t - said[host]))}
            items.append(item)
        moved[key] = items
    return moved
