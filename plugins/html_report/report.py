"""The pieces of one input's report: header, answer fields, speaker timeline, transcript, footer."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Mapping

from runpipe.answer import parse_item
from runpipe.model import AnswerField, AnswerItem, Document, Feelings, Segment, Usage
from runpipe.plugins.feelings import MUSICAL_KINDS, SPEECH_EMOTIONS, event_feelings, known_mood, mood_phrase

from .page import clock, esc, seconds_attr

#: Speaker colours cycle through this many CSS classes (``spk-0`` ... ``spk-7``).
PALETTE_SIZE = 8
EMOTIONS = SPEECH_EMOTIONS

_FIELD_TITLES = {
    "summary": "Summary",
    "mood": "Overall mood",
    "answer": "Answer",
    "description": "Description",
    "decisions": "Decisions",
    "action_items": "Action items",
    "events": "Events",
}
_LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*$")
_LANE_HEIGHT = 28
_SVG_WIDTH = 1000


@dataclass(frozen=True, slots=True)
class Lane:
    """One speaker row of the timeline; ``css`` ties its colour to the transcript."""

    label: str | None
    name: str
    css: str


def lanes(document: Document) -> list[Lane]:
    """Speakers in the document's order, then labels only segments know, then "Unknown"."""
    labels = dict.fromkeys([*(s.label for s in document.speakers), *(s.speaker for s in document.segments if s.speaker)])
    result = [Lane(label, document.speaker_name(label) or label, f"spk-{i % PALETTE_SIZE}") for i, label in enumerate(labels)]
    if any(s.speaker is None for s in document.segments):
        result.append(Lane(None, "Unknown speaker", "spk-none"))
    return result


def timeline_duration(document: Document) -> float:
    ends = [s.end if s.end is not None else s.start for s in document.segments]
    return max([document.audio.duration or 0.0, *ends])


def segment_end(document: Document, index: int, duration: float) -> float:
    """A segment's end, or the next segment's start (or the duration) when it has none."""
    segment = document.segments[index]
    if segment.end is not None:
        return segment.end
    later = [s.start for s in document.segments[index + 1 :] if s.start > segment.start]
    return min(later) if later else max(duration, segment.start)


# ---------------------------------------------------------------------------
# Header and answer fields
# ---------------------------------------------------------------------------


def header_meta(document: Document, title: str) -> str:
    parts = [] if title == document.source.name else [esc(document.source.name)]
    if document.audio.duration:
        parts.append(f"{esc(clock(document.audio.duration))} long")
    speakers = lanes(document)
    if speakers:
        parts.append(f"{len(speakers)} speaker{'s' if len(speakers) != 1 else ''}")
    languages: dict[str, str] = {}
    for s in document.segments:
        key = (s.language_code or s.language or "").strip().lower()
        if key and (key not in languages or s.language):
            languages[key] = s.language or key.upper()
    if languages:
        parts.append(esc(", ".join(sorted(set(languages.values())))))
    parts.append(f"{len(document.segments)} segment{'s' if len(document.segments) != 1 else ''}")
    return " · ".join(f"<span>{part}</span>" for part in parts)


def fields_html(document: Document) -> str:
    """One section per answer field (summary first), skipping empty ones."""
    known = [f for name in _FIELD_TITLES if (f := document.field(name)) is not None]
    others = [f for f in document.answer if f.name not in _FIELD_TITLES and f.name != "mood_detail"]
    sections = []
    for field in known + others:
        body = _mood_body(document.mood) if field.name == "mood" else _field_body(document, field)
        if body:
            title = _FIELD_TITLES.get(field.name) or field.name.replace("_", " ").capitalize()
            slug = "field-" + re.sub(r"[^a-z0-9]+", "-", field.name.lower()).strip("-")
            sections.append(
                f'<section class="field" id="{esc(slug)}" aria-labelledby="{esc(slug)}-h">'
                f'<h2 id="{esc(slug)}-h">{esc(title)}</h2>{body}</section>'
            )
    return "\n".join(sections)


def _mood_body(mood: Feelings) -> str:
    phrase = mood_phrase(mood)
    return f'<p><span class="chip chip-mood{_mood_class(mood.mood)}">{esc(phrase)}</span></p>' if phrase else ""


def _mood_class(value: str | None) -> str:
    mood = known_mood(value)
    return f" mood-{mood}" if mood else ""


def _field_body(document: Document, field: AnswerField) -> str:
    if field.text is not None:
        paragraphs = [p.strip() for p in re.split(r"\n\s*\n", field.text) if p.strip()]
        return "".join(f"<p>{esc(p)}</p>" for p in paragraphs)
    if field.items is not None:
        items = [_field_item(document, item) for item in field.items if item.answered not in (None, "", {}, [])]
        return f'<ul class="items">{"".join(items)}</ul>' if items else ""
    value = field.answered
    if isinstance(value, Mapping):
        return f'<ul class="items">{_field_item(document, parse_item(value))}</ul>' if value else ""
    return "" if value is None else f"<p>{esc(value)}</p>"


def _chip(key: str, text: Any, label: str = "") -> str:
    if not isinstance(text, str):
        text = json.dumps(text, ensure_ascii=False)
    css = "chip chip-" + re.sub(r"[^a-z0-9]+", "-", key.lower())
    return f'<span class="{esc(css)}">{esc(label + ": ") if label else ""}{esc(text)}</span>'


def _field_item(document: Document, item: AnswerItem) -> str:
    if not isinstance(item.answered, Mapping):
        return f"<li>{esc(item.text)}</li>"
    when = _seek_button(item)
    meta = []
    if item.kind and item.kind != item.text:
        meta.append(_chip("kind", item.kind))
    if item.speaker:
        meta.append(_chip("speaker", document.speaker_name(item.speaker)))
    if item.owner:
        meta.append(_chip("owner", document.speaker_name(item.owner), "Owner"))
    if item.due:
        meta.append(_chip("due", item.due, "Due"))
    meta += [_chip(key, value) for key, value in item.extras.items()]
    for label, value in event_feelings(item.feelings):
        css = f"chip chip-{label}" + (_mood_class(item.feelings.mood) if label == "mood" else "")
        meta.append(f'<span class="{esc(css)}">{esc(label.capitalize())}: {esc(value)}</span>')
    question = f'<span class="item-question">{esc(item.question)}</span>' if item.question else ""
    text = f'<span class="item-text">{esc(item.text)}</span>' if item.text else ""
    moments = "".join(f'<li class="moment">{_seek_button(m)}<span class="item-text">{esc(m.text)}</span></li>' for m in item.moments)
    moments = f'<ul class="moments">{moments}</ul>' if moments else ""
    return f'<li class="item">{when}{question}{text}{"".join(meta)}{moments}</li>'


def _seek_button(item: AnswerItem) -> str:
    """A button that seeks the player to where ``item`` starts, or its time as plain text when
    it does not read as one."""
    if not item.timestamp:
        return ""
    label = item.timestamp + (f"–{item.end_timestamp}" if item.end_timestamp else "")
    if item.start is None:
        return f'<span class="when">{esc(label)}</span>'
    return f'<button type="button" class="when seek" data-seek="{seconds_attr(item.start)}" aria-label="Play from {esc(item.timestamp)}">{esc(label)}</button>'


# ---------------------------------------------------------------------------
# Speaker timeline (SVG bars stretched to the width; labels and axis in HTML)
# ---------------------------------------------------------------------------


def timeline_html(document: Document, duration: float) -> str:
    rows = lanes(document)
    if not document.segments or duration <= 0 or not rows:
        return ""
    lane_of = {lane.label: i for i, lane in enumerate(rows)}
    height = _LANE_HEIGHT * len(rows)
    ticks = _ticks(duration)
    grid = _grid(ticks, duration, height)
    backgrounds = "".join(
        f'<rect class="lane-bg {lane.css}" x="0" y="{i * _LANE_HEIGHT + 3}" width="{_SVG_WIDTH}" height="{_LANE_HEIGHT - 6}"/>'
        for i, lane in enumerate(rows)
    )
    bars = "".join(
        _bar(document, index, lane_of[segment.speaker], rows[lane_of[segment.speaker]], duration)
        for index, segment in enumerate(document.segments)
    )
    labels = "".join(
        f'<li class="lane-label {lane.css}" title="{esc(lane.name)}"><span class="swatch" aria-hidden="true"></span><span class="lane-name">{esc(lane.name)}</span></li>'
        for lane in rows
    )
    long = duration >= 3600
    axis = _axis(ticks, duration)
    return f"""<section id="timeline" class="timeline-section" aria-labelledby="timeline-h">
<h2 id="timeline-h">Speaker timeline</h2>
<div class="timeline" style="--lanes:{len(rows)}">
<ul class="lane-labels" aria-label="Speakers">{labels}</ul>
<div class="timeline-track" title="Click to play from here">
<svg class="timeline-svg" viewBox="0 0 {_SVG_WIDTH} {height}" preserveAspectRatio="none" role="img" aria-label="Who speaks when, over {esc(clock(duration, long=long))}; the transcript below has the same segments">
<g class="grid">{grid}</g>{backgrounds}{bars}
</svg>
<div class="playhead" hidden></div>
<div class="axis" aria-hidden="true">{axis}</div>
</div>
</div>
{_legend(document)}
</section>"""


def _bar(document: Document, index: int, row: int, lane: Lane, duration: float) -> str:
    segment = document.segments[index]
    x = _x(segment.start, duration)
    width = max(_x(segment_end(document, index, duration), duration) - x, 2.0)
    y = row * _LANE_HEIGHT + 5
    tip = f"{clock(segment.start)} {lane.name}: {_shorten(segment.content, 90)}"
    classes = f"bar {lane.css}" + (" approximate" if segment.timing == "approximate" else "")
    bar = (
        f'<rect class="{classes}" data-index="{index}" x="{x:.2f}" y="{y}" width="{width:.2f}" height="{_LANE_HEIGHT - 10}">'
        f"<title>{esc(tip)}</title></rect>"
    )
    emotion = _emotion(segment)
    if emotion and emotion != "neutral":
        bar += f'<rect class="emotion-mark emotion-{emotion}" data-index="{index}" x="{x:.2f}" y="{y}" width="{width:.2f}" height="4"/>'
    return bar


def _legend(document: Document) -> str:
    emotions = [e for e in EMOTIONS[:-1] if any(_emotion(s) == e for s in document.segments)]
    parts = [f'<span class="legend-item"><span class="emotion-dot emotion-{e}" aria-hidden="true"></span>{e}</span>' for e in emotions]
    if any(s.timing == "approximate" for s in document.segments):
        parts.append('<span class="legend-item"><span class="legend-faded" aria-hidden="true"></span>approximate timing</span>')
    if not parts:
        return ""
    prefix = "Marks on bars: " if emotions else ""
    return f'<p class="legend">{prefix}{"".join(parts)}</p>'


def _grid(ticks: list[float], duration: float, height: int) -> str:
    return "".join(
        f'<line x1="{x}" x2="{x}" y1="0" y2="{height}" vector-effect="non-scaling-stroke"/>'
        for x in (_x(t, duration) for t in ticks)
    )


def _axis(ticks: list[float], duration: float) -> str:
    long = duration >= 3600
    return "".join(
        f'<span class="tick{" tick-end" if _x(t, duration) > 0.95 * _SVG_WIDTH else ""}" '
        f'style="left:{_x(t, duration) / _SVG_WIDTH * 100:.3f}%">{esc(clock(t, long=long))}</span>'
        for t in ticks
    )


def _x(seconds: float, duration: float) -> float:
    return max(0.0, min(seconds / duration, 1.0)) * _SVG_WIDTH


def _ticks(duration: float) -> list[float]:
    steps = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)
    step = next((s for s in steps if duration / s <= 8), steps[-1])
    return [i * step for i in range(int(duration // step) + 1)]


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _emotion(segment: Segment) -> str | None:
    value = (segment.emotion or "").strip().lower()
    return value if value in EMOTIONS else None


# ---------------------------------------------------------------------------
# Sound timeline: the description's events, one lane per kind, moods marked on music
# ---------------------------------------------------------------------------

_EVENT_KINDS = ("speech", "singing", "music", "sound", "silence")


@dataclass(frozen=True, slots=True)
class TimedEvent:
    """One event of a description with a start, and an end (the next event's start when it has none)."""

    start: float
    end: float
    kind: str
    item: AnswerItem


def timed_events(document: Document) -> list[TimedEvent]:
    """The events whose kind and start can be read; an event without a readable end lasts until the next."""
    starts = [item for item in document.items("events") if item.kind and item.start is not None]
    events = []
    for index, item in enumerate(starts):
        start, end = item.start, item.end
        assert start is not None and item.kind is not None
        if end is None or end <= start:
            later = [s.start for s in starts[index + 1 :] if s.start is not None and s.start > start]
            end = later[0] if later else start
        events.append(TimedEvent(start, end, item.kind, item))
    return events


def events_duration(document: Document, duration: float) -> float:
    return max([duration, *(e.end for e in timed_events(document))])


def sound_timeline_html(document: Document, duration: float) -> str:
    """Lanes of speech, singing, music, sounds and silence; music and singing carry a mark in
    their mood's colour, speech one in its emotion's, as the speaker timeline does."""
    events = timed_events(document)
    duration = events_duration(document, duration)
    if not events or duration <= 0:
        return ""
    kinds = [k for k in _EVENT_KINDS if any(e.kind == k for e in events)]
    kinds += sorted({e.kind for e in events} - set(kinds))
    lane_of = {kind: i for i, kind in enumerate(kinds)}
    height = _LANE_HEIGHT * len(kinds)
    ticks = _ticks(duration)
    backgrounds = "".join(
        f'<rect class="lane-bg kind-{esc(kind)}" x="0" y="{i * _LANE_HEIGHT + 3}" width="{_SVG_WIDTH}" height="{_LANE_HEIGHT - 6}"/>'
        for i, kind in enumerate(kinds)
    )
    bars = "".join(_event_bar(event, lane_of[event.kind], duration) for event in events)
    labels = "".join(
        f'<li class="lane-label kind-{esc(kind)}"><span class="swatch" aria-hidden="true"></span><span class="lane-name">{esc(kind.capitalize())}</span></li>'
        for kind in kinds
    )
    return f"""<section id="sound-timeline" class="timeline-section" aria-labelledby="sound-timeline-h">
<h2 id="sound-timeline-h">Sound timeline</h2>
<div class="timeline" style="--lanes:{len(kinds)}">
<ul class="lane-labels" aria-label="Kinds of sound">{labels}</ul>
<div class="sound-track">
<svg class="timeline-svg" viewBox="0 0 {_SVG_WIDTH} {height}" preserveAspectRatio="none" role="img" aria-label="What can be heard when, over {esc(clock(duration, long=duration >= 3600))}; the events list has the same events">
<g class="grid">{_grid(ticks, duration, height)}</g>{backgrounds}{bars}
</svg>
<div class="axis" aria-hidden="true">{_axis(ticks, duration)}</div>
</div>
</div>
{_mood_legend(events)}
</section>"""


def _event_bar(event: TimedEvent, row: int, duration: float) -> str:
    x = _x(event.start, duration)
    width = max(_x(event.end, duration) - x, 2.0)
    y = row * _LANE_HEIGHT + 5
    feelings = ", ".join(f"{label} {value}" for label, value in event_feelings(event.item.feelings))
    tip = f"{clock(event.start)} {event.kind}: {_shorten(event.item.text, 90)}" + (f" ({feelings})" if feelings else "")
    bar = (
        f'<rect class="event-bar kind-{esc(event.kind)}" data-seek="{seconds_attr(event.start)}" x="{x:.2f}" y="{y}" '
        f'width="{width:.2f}" height="{_LANE_HEIGHT - 10}"><title>{esc(tip)}</title></rect>'
    )
    if event.kind in MUSICAL_KINDS:
        mood = known_mood(event.item.feelings.mood)
        if mood:
            bar += f'<rect class="mood-mark mood-{mood}" x="{x:.2f}" y="{y}" width="{width:.2f}" height="4"/>'
    elif event.kind == "speech":
        emotion = (event.item.feelings.emotion or "").lower()
        if emotion in EMOTIONS and emotion != "neutral":
            bar += f'<rect class="emotion-mark emotion-{emotion}" x="{x:.2f}" y="{y}" width="{width:.2f}" height="4"/>'
    return bar


def _mood_legend(events: list[TimedEvent]) -> str:
    moods = dict.fromkeys(m for e in events if e.kind in MUSICAL_KINDS and (m := known_mood(e.item.feelings.mood)))
    if not moods:
        return ""
    parts = "".join(f'<span class="legend-item"><span class="mood-dot mood-{m}" aria-hidden="true"></span>{m}</span>' for m in moods)
    return f'<p class="legend">Moods on music: {parts}</p>'


# ---------------------------------------------------------------------------
# Transcript
# ---------------------------------------------------------------------------


def transcript_html(document: Document, duration: float) -> str:
    if not document.segments and timed_events(document):
        return ""  # a description: its events and sound timeline are the content
    if not document.segments:
        return (
            '<section id="transcript" aria-labelledby="transcript-h"><h2 id="transcript-h">Transcript</h2>'
            '<p class="empty">This result has no transcript segments.</p></section>'
        )
    css = {lane.label: lane.css for lane in lanes(document)}
    long = duration >= 3600
    items = "\n".join(_segment(document, i, css[s.speaker], long) for i, s in enumerate(document.segments))
    count = len(document.segments)
    return f"""<section id="transcript" aria-labelledby="transcript-h">
<div class="section-head">
<h2 id="transcript-h">Transcript</h2>
<div class="search" role="search">
<label for="search" class="visually-hidden">Search the transcript</label>
<input id="search" type="search" placeholder="Search transcript" autocomplete="off" spellcheck="false" aria-describedby="search-count">
<p id="search-count" class="search-count" aria-live="polite">{count} segment{'s' if count != 1 else ''}</p>
</div>
</div>
<p class="hint">Click or tap a segment (or press Enter on it) to play from there.</p>
<ol class="segments" id="segments">
{items}
</ol>
</section>"""


def _segment(document: Document, index: int, css: str, long: bool) -> str:
    s = document.segments[index]
    speaker = document.speaker_name(s.speaker) or "Unknown speaker"
    attrs = {
        "class": f"segment {css}" + (" approximate" if s.timing == "approximate" else ""),
        "id": f"seg-{index}",
        "data-index": str(index),
        "data-start": seconds_attr(s.start),
        "data-end": "" if s.end is None else seconds_attr(s.end),
        "data-speaker": s.speaker or "",
        "data-timing": s.timing,
        "tabindex": "0",
    }
    head = [
        f'<span class="speaker" data-text>{esc(speaker)}</span>',
        f'<time class="time" datetime="PT{seconds_attr(s.start)}S" title="Play from {esc(clock(s.start, long=long))} ({esc(s.timing)} timing)">'
        f"{esc(clock(s.start, long=long))}</time>",
    ]
    if s.timing == "approximate":
        head.append('<span class="approx" title="Approximate time: not aligned to the audio">≈<span class="visually-hidden"> approximate time</span></span>')
    if s.language_code or s.language:
        head.append(f'<span class="badge lang" title="{esc(s.language or s.language_code)}">{esc((s.language_code or s.language).upper())}</span>')
    emotion = (s.emotion or "").strip()
    if emotion:
        known = _emotion(s)
        head.append(f'<span class="badge emotion{" emotion-" + known if known else ""}">{esc(emotion)}</span>')
    lang = s.language_code if s.language_code and _LANGUAGE_TAG.match(s.language_code) else None
    lang_attr = f' lang="{esc(lang)}"' if lang else ""
    body = f'<p class="content"{lang_attr} data-text>{esc(s.content)}</p>'
    if s.translation and s.translation.strip() and s.translation.strip() != s.content.strip():
        body += f'<p class="translation"><span class="visually-hidden">Translation: </span><span data-text>{esc(s.translation)}</span></p>'
    attr_text = " ".join(f'{name}="{esc(value)}"' for name, value in attrs.items())
    return f'<li {attr_text}><div class="segment-head">{"".join(head)}</div>{body}</li>'


def segment_data(document: Document, duration: float) -> dict[str, Any]:
    """What report.js reads (and what a curious reader finds in the page source)."""
    return {
        "duration": duration,
        "segments": [
            {
                "index": i,
                "start": s.start,
                "end": segment_end(document, i, duration),
                "speaker": s.speaker,
                "speaker_name": document.speaker_name(s.speaker),
                "content": s.content,
                "language": s.language,
                "language_code": s.language_code,
                "translation": s.translation,
                "emotion": s.emotion,
                "timing": s.timing,
            }
            for i, s in enumerate(document.segments)
        ],
    }


# ---------------------------------------------------------------------------
# Provenance footer
# ---------------------------------------------------------------------------


def provenance_html(document: Document, version: str) -> str:
    rows: list[tuple[str, str]] = [
        ("Backend", document.backend),
        ("Model", document.model),
        ("Task", f"{document.task} ({document.schema_name} schema)"),
    ]
    tokens = _usage_text(document.usage)
    if tokens:
        rows.append(("Tokens", tokens))
    rows += [(str(key), _plain(value)) for key, value in document.provenance.items()]
    rows.append(("Source", document.source.uri))
    items = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in rows)
    notes = "".join(f"<li>{esc(note)}</li>" for note in document.notes)
    notes_html = f'<h3>Notes</h3><ul class="notes">{notes}</ul>' if notes else ""
    return (
        f'<h2 id="provenance-h">How this was made</h2><dl class="facts">{items}</dl>{notes_html}'
        f'<p class="made-by">Written by runpipe {esc(version)}. This file works offline; nothing is loaded from the network.</p>'
    )


def _usage_text(usage: Usage) -> str:
    names = ("prompt", "audio", "text", "output", "thinking")
    parts = [f"{getattr(usage, n + '_tokens'):,} {n}" for n in names if getattr(usage, n + "_tokens") is not None]
    if usage.requests:
        parts.append(f"{usage.requests} request{'s' if usage.requests != 1 else ''}")
    return " · ".join(parts)


def _plain(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
