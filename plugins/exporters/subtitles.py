"""SRT and WebVTT people can publish as they are.

Cues are cut from word times: at most ``max_line_chars`` characters a line and ``max_lines``
lines a cue, counting everything shown on screen (SRT's speaker prefix included; WebVTT's
``<v Name>`` voice tag is markup, not text), never across a speaker change, between ``min_duration`` and ``max_duration``
seconds, breaking preferably after sentence punctuation and at pauses. Where a segment has no
word times, its words get times spread over the segment by their length (and the segment's
timing already says how trustworthy that is). Files are written by the ``srt`` and
``webvtt-py`` libraries.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, Mapping

import srt
import webvtt

from runpipe.interfaces import Exporter
from runpipe.model import Document, Segment
from runpipe.options import option

SENTENCE_END = (".", "?", "!", "…", "。", "？", "！")
CLAUSE_END = (",", ";", ":", "—", "–")
SPEECH_CHARS_PER_SECOND = 15.0  # conversational speech, spaces and punctuation included


@dataclass(frozen=True)
class CueRules:
    """How cues are cut."""

    max_line_chars: int = option(42, "characters a line may show, the speaker prefix included", minimum=10)
    max_lines: int = option(2, "lines a cue may have", minimum=1)
    min_duration: float = option(1.0, "seconds a cue stays on screen at least (unless the next one starts)", minimum=0)
    max_duration: float = option(7.0, "seconds a cue stays on screen at most", minimum=0.5)
    pause_break: float = option(0.6, "a silence this long between words (seconds) ends a cue", minimum=0)


@dataclass(frozen=True)
class SubtitleOptions(CueRules):
    speakers: bool = option(True, "show who speaks: SRT starts a cue 'Name:' at each speaker change, WebVTT gives each cue a voice tag")


@dataclass(frozen=True, slots=True)
class Cue:
    start: float
    end: float
    lines: tuple[str, ...]
    speaker: str | None


def _timed_words(segment: Segment) -> list[tuple[str, float, float]]:
    words = [w for w in segment.words if w.text.strip()]
    if words and all(w.start is not None and w.end is not None for w in words):
        return [(w.text.strip(), float(w.start), float(w.end)) for w in words]  # type: ignore[arg-type]
    tokens = segment.content.split()
    if not tokens:
        return []
    # No word times: assume a natural pace from the segment's start, so a segment that runs
    # on into a long pause does not stretch its words over the silence.
    natural = len(segment.content) / SPEECH_CHARS_PER_SECOND
    end = segment.start + natural if segment.end is None else min(segment.end, segment.start + natural)
    span = max(end - segment.start, 0.1)
    total = sum(len(t) + 1 for t in tokens)
    result, cursor = [], segment.start
    for token in tokens:
        length = span * (len(token) + 1) / total
        result.append((token, cursor, cursor + length))
        cursor += length
    return result


def wrap(words: list[str], max_chars: int, max_lines: int) -> tuple[str, ...] | None:
    """Balanced lines for ``words`` within the limits, or None if they do not fit."""
    text = " ".join(words)
    if len(text) <= max_chars:
        return (text,)
    if max_lines == 1:
        return None
    best: tuple[str, ...] | None = None
    # two or more lines: choose the split that keeps lines closest in length
    for cut in range(1, len(words)):
        head, tail = " ".join(words[:cut]), words[cut:]
        if len(head) > max_chars:
            break
        rest = wrap(tail, max_chars, max_lines - 1)
        if rest is None:
            continue
        candidate = (head, *rest)
        if best is None or max(map(len, candidate)) - min(map(len, candidate)) < max(map(len, best)) - min(map(len, best)):
            best = candidate
    return best


def build_cues(document: Document, rules: CueRules, prefix: Callable[[str | None], str | None] = lambda speaker: None) -> list[Cue]:
    """Cues within ``rules``. ``prefix(speaker)`` is text shown before the words of the first
    cue after a speaker change (SRT's "Ada:"): it is on screen, so it counts toward the limits."""
    cues: list[Cue] = []
    duration = document.audio.duration
    for segment in document.segments:
        timed = _timed_words(segment)
        current: list[tuple[str, float, float]] = []
        label = prefix(segment.speaker)

        def shown(words: list[str]) -> list[str]:
            """What a cue holding ``words`` shows: the prefix first, at a speaker change."""
            changed = not cues or cues[-1].speaker != segment.speaker
            return [label, *words] if label and changed else words

        def close() -> None:
            if current:
                lines = wrap(shown([w for w, _, _ in current]), rules.max_line_chars, rules.max_lines)
                assert lines is not None  # words are only added while they fit
                cues.append(Cue(current[0][1], current[-1][2], lines, segment.speaker))
                current.clear()

        for index, (word, start, end) in enumerate(timed):
            if current:
                fits = wrap(shown([w for w, _, _ in current] + [word]), rules.max_line_chars, rules.max_lines) is not None
                too_long = end - current[0][1] > rules.max_duration
                paused = start - current[-1][2] >= rules.pause_break
                if not fits or too_long or paused:
                    close()
            if not current and wrap(shown([word]), rules.max_line_chars, rules.max_lines) is None:
                # one absurdly long token: cut rather than overflow (it gets a line of its own)
                word = word[: rules.max_line_chars]
            current.append((word, start, end))
            text_len = sum(len(w) + 1 for w in shown([w for w, _, _ in current]))
            capacity = rules.max_line_chars * rules.max_lines
            is_last = index == len(timed) - 1
            if not is_last and word.endswith(SENTENCE_END) and text_len >= capacity * 0.3:
                close()
            elif not is_last and word.endswith(CLAUSE_END) and text_len >= capacity * 0.7:
                close()
        close()
    return _fix_durations(cues, rules, duration)


def _fix_durations(cues: list[Cue], rules: CueRules, duration: float | None) -> list[Cue]:
    """Stretch short cues toward ``min_duration`` without overlapping the next cue or the end."""
    fixed = []
    for index, cue in enumerate(cues):
        limit = cues[index + 1].start if index + 1 < len(cues) else (duration if duration is not None else cue.end + rules.min_duration)
        end = cue.end
        if end - cue.start < rules.min_duration:
            end = min(cue.start + rules.min_duration, max(limit, cue.end))
        end = max(end, cue.start + 0.001)
        fixed.append(Cue(cue.start, end, cue.lines, cue.speaker))
    return fixed


class _SubtitleExporter(Exporter):
    Options = SubtitleOptions
    settings: SubtitleOptions

    def __init__(self, options: Mapping[str, Any] | None = None):
        super().__init__(options)
        from runpipe.errors import PipelineConfigError

        if self.settings.min_duration > self.settings.max_duration:
            raise PipelineConfigError(f"export format {self.format}: min_duration ({self.settings.min_duration:g} s) "
                                      f"is longer than max_duration ({self.settings.max_duration:g} s)")


class SrtExporter(_SubtitleExporter):
    """SubRip subtitles; with ``speakers: true`` (default) a cue starts ``Name:`` at each speaker change."""

    format = "srt"
    suffix = ".srt"
    description = "SubRip subtitles cut from word times"

    def render(self, document: Document) -> str:
        def prefix(speaker: str | None) -> str | None:
            name = document.speaker_name(speaker)
            return f"{name}:" if self.settings.speakers and name else None

        subtitles = [
            srt.Subtitle(index, timedelta(seconds=cue.start), timedelta(seconds=cue.end), "\n".join(cue.lines))
            for index, cue in enumerate(build_cues(document, self.settings, prefix), start=1)
        ]
        return srt.compose(subtitles, reindex=False)


def _vtt_time(seconds: float) -> str:
    millis = int(round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, ms = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{ms:03d}"


class VttExporter(_SubtitleExporter):
    """WebVTT captions; with ``speakers: true`` (default) each cue carries a ``<v Name>`` voice tag."""

    format = "vtt"
    suffix = ".vtt"
    description = "WebVTT captions with voice tags"

    def render(self, document: Document) -> str:
        vtt = webvtt.WebVTT()
        for cue in build_cues(document, self.settings):
            # cue text is markup in WebVTT: a literal "<" or "&" must be escaped
            text = "\n".join(html.escape(line, quote=False) for line in cue.lines)
            name = document.speaker_name(cue.speaker)
            if self.settings.speakers and name:
                text = f"<v {html.escape(name, quote=False)}>{text}"
            vtt.captions.append(webvtt.Caption(_vtt_time(cue.start), _vtt_time(cue.end), text))
        return vtt.content
