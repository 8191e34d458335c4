"""Re-timing a transcript against the audio: pure functions, no models.

Given the backend's segments (text with untrusted times), words recognised locally with
trusted times, and the speech regions voice activity found:

1. the backend's words are aligned to the recognised words by text (longest matching runs,
   then close spellings inside the gaps); an aligned word is an *anchor* and takes the
   recognised word's times;
2. every other word is interpolated between its neighbouring anchors by length;
3. a segment starts at its first word and ends at its last, snapped to a speech onset or
   offset nearby unless that edge belongs to the neighbouring segments' words (a speech
   region can hold several segments); segments stay in order, never overlap the same speaker's previous segment
   and never pass the end of the audio.

Alignment is by text only, so it does not care how far the backend's timestamps drifted.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from bisect import bisect_left
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Sequence

from runpipe.model import Segment, Word

Region = tuple[float, float]


@dataclass(frozen=True, slots=True)
class TimedWord:
    text: str
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class RetimeSettings:
    snap_seconds: float = 0.5  # how far a boundary may move to meet a speech onset/offset
    fuzzy_ratio: float = 0.75  # spelling similarity that still counts as the same word


@dataclass(frozen=True, slots=True)
class RetimeStats:
    segments: int
    aligned: int
    interpolated: int
    model: int
    anchored_words: int
    words: int


def normalize_word(text: str) -> str:
    """Lowercase, accents folded, punctuation dropped: the form words are compared in."""
    folded = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in folded if not unicodedata.combining(ch) and (ch.isalnum() or ch == "'"))


def tokens(text: str) -> list[str]:
    """The words of ``text`` as written, punctuation attached (subtitles are cut from them)."""
    return text.split()


def _similar(a: str, b: str, ratio: float) -> bool:
    return bool(a) and bool(b) and SequenceMatcher(None, a, b).ratio() >= ratio


def align_words(ours: Sequence[str], theirs: Sequence[str], settings: RetimeSettings = RetimeSettings()) -> dict[int, int]:
    """Map indexes of ``ours`` to indexes of ``theirs`` (both normalized words)."""
    matcher = SequenceMatcher(None, list(ours), list(theirs), autojunk=False)
    pairs: dict[int, int] = {}
    previous_a = previous_b = 0
    for block in matcher.get_matching_blocks():
        # inside the gap before this block, pair words in order when they are spelled alike
        gap_a, gap_b = range(previous_a, block.a), range(previous_b, block.b)
        j = 0
        for i in gap_a:
            for k in range(j, len(gap_b)):
                if _similar(ours[i], theirs[gap_b[k]], settings.fuzzy_ratio):
                    pairs[i] = gap_b[k]
                    j = k + 1
                    break
        for offset in range(block.size):
            pairs[block.a + offset] = block.b + offset
        previous_a, previous_b = block.a + block.size, block.b + block.size
    return pairs


def _speaking_rate(times: list[tuple[float, float] | None], lengths: list[int]) -> float:
    """Median seconds per character of the anchored words (the voice's own pace)."""
    rates = sorted((t[1] - t[0]) / lengths[i] for i, t in enumerate(times) if t is not None and t[1] > t[0])
    return rates[len(rates) // 2] if rates else 0.06


def _pack(lengths: list[int], left: float, right: float, rate: float, *, align_end: bool) -> list[tuple[float, float]]:
    """Times for words spoken at ``rate`` between ``left`` and ``right``: packed against
    ``right`` (words that lead into an anchor) or against ``left`` (words that follow one);
    squeezed evenly when the natural length does not fit."""
    natural = rate * sum(lengths)
    span = max(right - left, 0.0)
    scale = min(1.0, span / natural) if natural > 0 else 0.0
    cursor = right - natural * scale if align_end else left
    packed = []
    for length in lengths:
        step = rate * length * scale
        packed.append((cursor, cursor + step))
        cursor += step
    return packed


def _interpolate(
    times: list[tuple[float, float] | None], lengths: list[int], opens_segment: list[bool], lower: float, upper: float
) -> list[tuple[float, float]]:
    """Fill the unknown (start, end) pairs between anchors.

    Unheard words at the start of a segment lead into the segment's next anchor; the rest
    follow the previous anchor; both at the voice's pace. So a pause between two segments stays
    a pause instead of being spread over the words around it.
    """
    rate = _speaking_rate(times, lengths)
    filled: list[tuple[float, float]] = []
    index, count = 0, len(times)
    while index < count:
        if times[index] is not None:
            filled.append(times[index])  # type: ignore[arg-type]
            index += 1
            continue
        run_end = index
        while run_end < count and times[run_end] is None:
            run_end += 1
        left = filled[-1][1] if filled else lower
        right = max(times[run_end][0] if run_end < count else upper, left)  # type: ignore[index]
        # the last segment opening inside the run splits it: before it, words that trail the
        # previous anchor; from it on, words that lead into the next one
        split = max((k for k in range(index, run_end) if opens_segment[k]), default=None)
        if split is None:
            filled += _pack(lengths[index:run_end], left, right, rate, align_end=not filled)
        else:
            trailing = _pack(lengths[index:split], left, right, rate, align_end=False)
            leading_left = trailing[-1][1] if trailing else left
            filled += trailing + _pack(lengths[split:run_end], leading_left, right, rate, align_end=True)
        index = run_end
    return filled


def _snap(t: float, edges: Sequence[float], limit: float, low: float, high: float) -> float:
    """The edge nearest ``t`` within ``limit``, if it lies in [``low``, ``high``]: a segment's
    start may not snap to an onset its previous words were heard after (that onset is theirs),
    nor its end to an offset before the next words."""
    i = bisect_left(edges, t)
    near = [edges[j] for j in (i - 1, i) if 0 <= j < len(edges) and abs(edges[j] - t) <= limit and low <= edges[j] <= high]
    return min(near, key=lambda e: abs(e - t)) if near else t


def retime_segments(
    segments: Sequence[Segment],
    recognized: Sequence[TimedWord],
    regions: Sequence[Region],
    duration: float,
    settings: RetimeSettings = RetimeSettings(),
) -> tuple[tuple[Segment, ...], RetimeStats]:
    """Segments with times taken from the audio; see the module docstring."""
    words_per_segment = [tokens(s.content) for s in segments]
    flat = [(si, w) for si, ws in enumerate(words_per_segment) for w in ws]
    pairs = align_words([normalize_word(w) for _, w in flat], [normalize_word(r.text) for r in recognized], settings)
    times: list[tuple[float, float] | None] = [
        (recognized[pairs[i]].start, recognized[pairs[i]].end) if i in pairs else None for i in range(len(flat))
    ]
    if not pairs:  # nothing heard matches: the caller decides what the backend's times are worth
        return tuple(segments), RetimeStats(len(segments), 0, 0, len(segments), 0, len(flat))
    opens_segment = [i == 0 or flat[i - 1][0] != si for i, (si, _) in enumerate(flat)]
    filled = _interpolate(times, [len(w) + 1 for _, w in flat], opens_segment, 0.0, duration)
    onsets = sorted(s for s, _ in regions)
    offsets = sorted(e for _, e in regions)

    result: list[Segment] = []
    counts = {"aligned": 0, "interpolated": 0, "model": 0}
    cursor = 0
    last_end_by_speaker: dict[str | None, int] = {}
    for si, segment in enumerate(segments):
        n = len(words_per_segment[si])
        own = range(cursor, cursor + n)
        cursor += n
        previous_start = result[-1].start if result else 0.0
        if n == 0:  # no words to align: the backend's times, kept in order and inside the audio
            counts["model"] += 1
            start = min(max(segment.start, previous_start), duration)
            end = None if segment.end is None else min(max(segment.end, start), duration)
            result.append(dataclasses.replace(segment, timing="model", start=start, end=end))
            continue
        anchored = [i for i in own if times[i] is not None]
        start, end = filled[own[0]][0], filled[own[-1]][1]
        # aligned: the segment's first word was heard; else its times lean on neighbouring anchors
        timing = "aligned" if anchored and anchored[0] == own[0] else "interpolated"
        word_before = filled[own[0] - 1][1] if own[0] > 0 else 0.0
        word_after = filled[own[-1] + 1][0] if own[-1] + 1 < len(filled) else duration
        start = _snap(start, onsets, settings.snap_seconds, word_before, end)
        end = _snap(end, offsets, settings.snap_seconds, start, max(word_after, end))
        start = min(max(start, previous_start), duration)  # keep segments in order
        end = min(max(end, start), duration)
        words = tuple(
            Word(flat[i][1], round(filled[i][0], 3), round(filled[i][1], 3), 1.0 if times[i] is not None else None)
            for i in own
        )
        counts[timing] += 1
        retimed = dataclasses.replace(
            segment,
            start=round(start, 3),
            end=round(end, 3),
            words=words,
            timing=timing,
            anchored_share=round(len(anchored) / n, 3),
        )
        prior = last_end_by_speaker.get(segment.speaker)
        if prior is not None and result[prior].end is not None and result[prior].end > retimed.start:
            # the same voice cannot speak twice at once: end its previous segment here
            result[prior] = dataclasses.replace(result[prior], end=retimed.start)
        last_end_by_speaker[segment.speaker] = len(result)
        result.append(retimed)
    stats = RetimeStats(len(segments), counts["aligned"], counts["interpolated"], counts["model"], len(pairs), len(flat))
    return tuple(result), stats

