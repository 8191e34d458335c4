"""A backend's answer, parsed once: the validated JSON of an :class:`~runpipe.model.Analysis`
becomes typed :class:`~runpipe.model.Segment` values and :class:`~runpipe.model.AnswerField`
values on the input's timeline. Post-processors and exporters read these fields, never the
JSON's keys; :mod:`runpipe.serialize` writes them back in the same JSON form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from runpipe.model import Analysis, AnswerField, AnswerItem, Feelings, Segment, Word
from runpipe.timecode import format_clock, item_seconds, parse_clock

#: Keys an entry's text may be under, in the order they are looked for.
TEXT_KEYS = ("decision", "task", "description", "text", "content", "answer", "quote")
#: Keys of an entry that typed fields of :class:`AnswerItem` hold (besides its text).
_ITEM_KEYS = frozenset({"start", "end", "timestamp", "end_timestamp", "kind", "speaker", "owner", "due", "question",
                        "moments", "timing"})
_FEELING_KEYS = {"mood": "mood", "mood_detail": "mood_detail", "energy": "energy", "emotion": "emotion",
                 "lyrics_language": "lyrics_language", "lyrics_language_code": "lyrics_language"}


@dataclass(frozen=True, slots=True)
class ParsedAnswer:
    segments: tuple[Segment, ...]
    fields: tuple[AnswerField, ...]
    notes: tuple[str, ...]  # what had to be repaired, in plain words


def parse_answer(analysis: Analysis, duration: float | None) -> ParsedAnswer:
    """The typed form of ``analysis.data`` (already validated against its task's schema)."""
    segments, notes = parse_segments(analysis.data.get("segments") or (), analysis.offset, duration)
    fields = tuple(parse_field(name, value, analysis.offset) for name, value in analysis.data.items() if name != "segments")
    return ParsedAnswer(segments, fields, tuple(notes))


def shift_item(item: Mapping[str, Any], offset: float) -> tuple[float | None, dict[str, Any]]:
    """An answer item (segment, event, decision) with its times moved by ``offset``."""
    shifted = dict(item)
    start = None
    if isinstance(item.get("start"), (int, float)):
        start = item["start"] + offset
        shifted["start"] = start
        if isinstance(item.get("end"), (int, float)):
            shifted["end"] = item["end"] + offset
        if item.get("words"):
            shifted["words"] = [
                {**w, **{k: w[k] + offset for k in ("start", "end") if isinstance(w.get(k), (int, float))}} for w in item["words"]
            ]
    if isinstance(item.get("timestamp"), str):
        try:
            local = parse_clock(item["timestamp"])
        except ValueError:
            local = None
        if local is not None:
            start = start if start is not None else local + offset
            shifted["timestamp"] = format_clock(local + offset)
            if "start" not in item:
                shifted["start"] = local + offset  # keep the fraction a MM:SS string would lose
    for key in ("end_timestamp",):
        if isinstance(item.get(key), str):
            try:
                shifted[key] = format_clock(parse_clock(item[key]) + offset)
            except ValueError:
                pass
    return start, shifted


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def parse_item(entry: Any, offset: float = 0.0) -> AnswerItem:
    """One entry of an answer's list. ``offset``: where the answered audio starts on the input's
    timeline (the entry's times are moved by it, in ``answered`` too)."""
    if not isinstance(entry, Mapping):
        return AnswerItem(text="" if entry is None else str(entry), answered=entry)
    if offset:
        _, entry = shift_item(entry, offset)
    text_key = next((k for k in TEXT_KEYS if isinstance(entry.get(k), str) and entry[k]), None)
    feelings = {}
    for key, name in _FEELING_KEYS.items():
        value = _text(entry.get(key))
        if value and name not in feelings:
            feelings[name] = value
    covered = {text_key, *_ITEM_KEYS, *_FEELING_KEYS}
    moments = tuple(parse_item(m, offset) for m in entry.get("moments") or ())
    if offset and moments:
        entry = {**entry, "moments": [m.answered for m in moments]}
    return AnswerItem(
        text=entry[text_key] if text_key else "",
        start=item_seconds(entry, "start", "timestamp"),
        end=item_seconds(entry, "end", "end_timestamp"),
        timestamp=_text(entry.get("timestamp")),
        end_timestamp=_text(entry.get("end_timestamp")),
        kind=_text(entry.get("kind")),
        speaker=_text(entry.get("speaker")),
        owner=_text(entry.get("owner")),
        due=_text(entry.get("due")),
        question=_text(entry.get("question")),
        moments=moments,
        timing=_text(entry.get("timing")),
        feelings=Feelings(**feelings),
        extras={k: v for k, v in entry.items() if k not in covered and v not in (None, "", [], {})},
        answered=entry,
    )


def parse_field(name: str, value: Any, offset: float = 0.0) -> AnswerField:
    """One answer field besides the segments: a text, a list of entries, or any other value."""
    if isinstance(value, str):
        return AnswerField(name, value, text=value)
    if isinstance(value, (list, tuple)):
        items = tuple(parse_item(entry, offset) for entry in value)
        return AnswerField(name, [item.answered for item in items], items=items)
    return AnswerField(name, value)


def parse_fields(fields: Mapping[str, Any]) -> tuple[AnswerField, ...]:
    """Answer fields from their JSON form (a stored result, a test's mapping)."""
    return tuple(parse_field(name, value) for name, value in fields.items() if name != "segments")


def _words(item: Mapping[str, Any], offset: float) -> tuple[Word, ...]:
    words = []
    for word in item.get("words") or ():
        start, end = word.get("start"), word.get("end")
        words.append(
            Word(
                text=str(word.get("text", word.get("word", ""))),
                start=None if start is None else start + offset,
                end=None if end is None else end + offset,
                probability=word.get("probability"),
            )
        )
    return tuple(words)


def parse_segments(raw: Any, offset: float, duration: float | None) -> tuple[tuple[Segment, ...], list[str]]:
    """Typed segments on the input's timeline, and notes about what had to be repaired."""
    notes: list[str] = []
    pending: list[tuple[float, float | None, Mapping[str, Any], bool]] = []
    unparsed = 0
    previous = 0.0
    for item in raw:
        start = item_seconds(item, "start", "timestamp")
        if start is None:
            unparsed += 1
            start = previous
        else:
            start += offset
        end = item_seconds(item, "end", "end_timestamp")
        pending.append((start, None if end is None else end + offset, item, "start" in item))
        previous = start
    if unparsed:
        notes.append(f"{unparsed} segment timestamp(s) could not be read and were placed after the previous segment")
    # Kept in the backend's order: a model writes segments in the order they were spoken, while
    # its timestamps drift and jitter (sorting by them would shuffle the text); re-timing puts
    # them in time order, and sorts them when it keeps the backend's times.
    past_end = 0
    segments = []
    for index, (start, end, item, measured) in enumerate(pending):
        following = pending[index + 1][0] if index + 1 < len(pending) else duration
        if end is None or end <= start:
            end = following if following is not None and following > start else (start + 1.0 if duration is None else duration)
        timing = "aligned" if measured and item.get("words") else "model"
        if duration is not None and start > duration:
            past_end += 1
            start, timing = duration, "approximate"
        if duration is not None:
            end = min(end, duration)
        segments.append(
            Segment(
                start=round(start, 3),
                end=None if end is None else round(max(end, start), 3),
                content=str(item.get("content", item.get("text", ""))).strip(),
                speaker=item.get("speaker") or None,
                language=item.get("language") or None,
                language_code=item.get("language_code") or None,
                translation=item.get("translation") or None,
                emotion=(item.get("emotion") or None),
                words=_words(item, offset),
                timing=timing,
                original_timestamp=item.get("timestamp") if isinstance(item.get("timestamp"), str) else None,
            )
        )
    if past_end:
        notes.append(f"{past_end} segment(s) were timestamped past the end of the audio and were clamped to it")
    return tuple(segments), notes
