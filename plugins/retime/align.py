"""Re-timing a transcript against the audio: pure functions, no models.

The public entry point is :func:`retime_segments`. It takes a backend's segments (the right text
in the right order, times that may drift by seconds), words with trusted times from any
recogniser (the local Whisper model, or Gemini Transcribe's words), and the speech *passages*
voice activity found (optional: without them the words' own spans stand in), and returns the
segments with times taken from the audio:

1. **Anchors.** The backend's words are aligned to the timed words by text (longest matching
   runs, then close spellings inside the gaps). An aligned word is an anchor; one inside a run
   of two or more is *solid*, a lone match counts for less (a lone "the" matches anywhere).
2. **Passage alignment.** Segment starts are chosen by a monotonic dynamic programme over
   segments x start candidates (every passage onset and every timed word's start inside a
   passage, so several segments can share one passage). It measures on *speech time*, the
   passages laid end to end, so silence is never given to a segment. A choice costs:
   - the speech its words need: the text length at the voice's pace (measured on the anchors
     and the passages) must fit before the next segment's start; a segment is never given
     less than half of it, and speech beyond what it needs counts as unexplained (a partial
     transcript skips speech, but not for free);
   - the start itself: an onset after a pause is a natural start, a word in mid-flow is not;
   - its anchors: the start they imply (the earliest solid anchor minus the words before it
     at the voice's pace), and every anchor that would fall outside the segment;
   - the backend's timestamps, as a weak, capped prior: the spacing between consecutive
     segments and, more weakly, the absolute time (drift breaks both, so neither can
     outweigh text evidence).
3. **Refinement inside the passage.** Anchors inside the chosen span keep their heard times;
   the other words are laid at the voice's pace in speech time between them (never on
   silence, never past the next segment's start). A segment ends at its last word, met by
   the passage's offset when that is within ``snap_seconds``.

Every segment records how its time was obtained (``timing``): ``aligned`` (its first word was
heard where it starts), ``interpolated`` (other words of it anchored it), ``passage`` (placed
on speech by the passage alignment alone) or ``model`` (no words to place: the backend's time,
kept in order and inside the audio). Segments stay in order, a voice never overlaps its own
previous segment, and nothing passes the end of the audio.
"""

from __future__ import annotations

import dataclasses
import math
import unicodedata
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Sequence

import numpy as np

from runpipe.errors import PipelineConfigError
from runpipe.model import Segment, Word
from runpipe.options import option

Region = tuple[float, float]


@dataclass(frozen=True, slots=True)
class TimedWord:
    text: str
    start: float
    end: float


@dataclass(frozen=True)
class RetimeSettings:
    """How the aligner weighs its evidence: the ``retime`` step's options that reach it (the
    step adds its own, see :class:`~runpipe.plugins.retime.step.RetimeOptions`).

    The costs of the passage alignment are in "seconds of misplacement". Each is a cause, not a
    fit: text evidence (anchors) outweighs the backend's times, which drift by design.
    """

    snap_seconds: float = option(0.5, "how far a segment's end may move to meet the end of its speech passage",
                                 minimum=0, maximum=5)
    fuzzy_ratio: float = option(0.75, "spelling similarity (0-1) at which a heard word still counts as the backend's "
                                "word (a misheard ending, a folded accent)", minimum=0, maximum=1)
    # "und" is 0.75 like "sound": short words match by spelling far too easily
    min_fuzzy_letters: int = option(4, "shorter words anchor only when spelled exactly alike", minimum=1, maximum=20)
    band_seconds: float = option(180.0, "longest stretch of the recording one segment may span (bounds the "
                                 "alignment's cost)", minimum=10)
    anchor_cost: float = option(3.0, "cost per second a segment starts away from where its heard words put it",
                                minimum=0)
    anchor_cost_cap_seconds: float = option(4.0, "the anchors' pull grows no further beyond this many seconds",
                                            minimum=0)
    anchor_outside_cost: float = option(4.0, "cost per heard word that the placement would put into another segment",
                                        minimum=0)
    lone_anchor_weight: float = option(0.3, "weight of a heard word outside any matching run of two or more (a lone "
                                       "'the' matches anywhere) against 1 inside one", minimum=0, maximum=1)
    mid_flow_start_cost: float = option(2.0, "cost of starting a segment where no pause precedes; an onset after a "
                                        "pause costs less, after a long one nothing", minimum=0)
    natural_pause_seconds: float = option(0.25, "pause before a start that makes it natural (the mid-flow cost falls "
                                          "off over this scale)", minimum=0.01)
    short_speech_cost: float = option(2.0, "cost per second of speech missing from what a segment's words need "
                                      "(below 80 % of it)", minimum=0)
    min_need_share: float = option(0.5, "a segment is never given less than this share of the speech its words need",
                                   minimum=0.05, maximum=1)
    unexplained_speech_cost: float = option(0.3, "cost per second of speech a segment would hold beyond 1.5 x what "
                                            "its words need (a partial transcript skips speech, not for free)",
                                            minimum=0)
    backend_spacing_cost: float = option(0.15, "cost per second the backend's spacing of two consecutive segments "
                                         "disagrees (its times are a weak prior)", minimum=0)
    backend_spacing_cap_seconds: float = option(6.0, "the spacing prior's pull grows no further beyond this many "
                                                "seconds", minimum=0)
    backend_time_cost: float = option(0.05, "cost per second a start differs from the backend's own time", minimum=0)
    backend_time_cap_seconds: float = option(10.0, "the backend time's pull grows no further beyond this many seconds",
                                             minimum=0)
    grid_seconds: float = option(0.5, "spacing of the start candidates inside speech where no word was recognised",
                                 minimum=0.05)
    default_seconds_per_letter: float = option(0.07, "the voice's pace when no anchored word measures it",
                                               minimum=0.01, maximum=1)
    min_seconds_per_letter: float = option(0.045, "the fastest pace measured anchors may set", minimum=0.01, maximum=1)
    max_seconds_per_letter: float = option(0.14, "the slowest pace measured anchors may set", minimum=0.01, maximum=1)

    def __post_init__(self) -> None:
        if self.min_seconds_per_letter > self.max_seconds_per_letter:
            raise PipelineConfigError(
                f"post-processor retime: min_seconds_per_letter ({self.min_seconds_per_letter:g}) is above "
                f"max_seconds_per_letter ({self.max_seconds_per_letter:g})"
            )


@dataclass(frozen=True, slots=True)
class RetimeStats:
    segments: int
    aligned: int
    interpolated: int
    passage: int
    model: int
    anchored_words: int
    words: int

    @property
    def placed(self) -> int:
        """Segments whose time now comes from the audio."""
        return self.aligned + self.interpolated + self.passage


_SYLLABIC_UNITS = 2.5  # a CJK character or kana is a syllable: about two and a half letters of speech


def normalize_word(text: str) -> str:
    """Lowercase, accents folded, punctuation dropped: the form words are compared in."""
    folded = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in folded if not unicodedata.combining(ch) and (ch.isalnum() or ch == "'"))


def tokens(text: str) -> list[str]:
    """The words of ``text`` as written, punctuation attached (subtitles are cut from them).
    Text written without spaces (Chinese, Japanese) is one token per character."""
    words: list[str] = []
    for chunk in text.split():
        if any(_is_syllabic(ch) for ch in chunk):
            words += _split_syllabic(chunk)
        else:
            words.append(chunk)
    return words


def _is_syllabic(ch: str) -> bool:
    name = unicodedata.name(ch, "")
    return name.startswith(("CJK UNIFIED", "HIRAGANA", "KATAKANA", "HANGUL"))


def _split_syllabic(chunk: str) -> list[str]:
    """One token per syllabic character; punctuation stays on the character before it."""
    pieces: list[str] = []
    for ch in chunk:
        if pieces and not (_is_syllabic(ch) or ch.isalnum()):
            pieces[-1] += ch
        elif pieces and not _is_syllabic(ch) and not _is_syllabic(pieces[-1][-1]):
            pieces[-1] += ch  # a run of latin letters or digits inside CJK text
        else:
            pieces.append(ch)
    return pieces


def spoken_units(word: str) -> float:
    """How long a word takes to say, in letters (and the break after it); a syllabic
    character (CJK, kana, hangul) counts as a syllable."""
    if any(_is_syllabic(ch) for ch in word):
        return _SYLLABIC_UNITS * sum(_is_syllabic(ch) for ch in word)
    return sum(ch.isalnum() for ch in word) + 1.0  # and the break after a word


def _similar(a: str, b: str, settings: RetimeSettings) -> bool:
    return min(len(a), len(b)) >= settings.min_fuzzy_letters and SequenceMatcher(None, a, b).ratio() >= settings.fuzzy_ratio


def align_words(ours: Sequence[str], theirs: Sequence[str], settings: RetimeSettings = RetimeSettings()) -> dict[int, int]:
    """Map indexes of ``ours`` to indexes of ``theirs`` (both normalized words)."""
    return {i: j for i, (j, _) in _anchor_pairs(ours, theirs, settings).items()}


def _anchor_pairs(ours: Sequence[str], theirs: Sequence[str], settings: RetimeSettings) -> dict[int, tuple[int, float]]:
    """``align_words`` with each pair's weight: 1 inside a matching run, less when lone."""
    matcher = SequenceMatcher(None, list(ours), list(theirs), autojunk=False)
    pairs: dict[int, tuple[int, float]] = {}
    previous_a = previous_b = 0
    for block in matcher.get_matching_blocks():
        # inside the gap before this block, pair words in order when they are spelled alike
        gap_a, gap_b = range(previous_a, block.a), range(previous_b, block.b)
        j = 0
        for i in gap_a:
            for k in range(j, len(gap_b)):
                if _similar(ours[i], theirs[gap_b[k]], settings):
                    pairs[i] = (gap_b[k], settings.lone_anchor_weight)
                    j = k + 1
                    break
        weight = 1.0 if block.size >= 2 else settings.lone_anchor_weight
        for offset in range(block.size):
            pairs[block.a + offset] = (block.b + offset, weight)
        previous_a, previous_b = block.a + block.size, block.b + block.size
    return pairs


@dataclass(frozen=True, slots=True)
class SpeechTime:
    """The passages laid end to end: a clock that only runs while someone speaks."""

    starts: tuple[float, ...]
    ends: tuple[float, ...]
    before: tuple[float, ...]  # speech seconds before each passage

    @classmethod
    def of(cls, passages: Sequence[Region], duration: float) -> "SpeechTime":
        merged: list[list[float]] = []
        for start, end in sorted(passages):
            start, end = max(0.0, start), min(end, duration)
            if end <= start:
                continue
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        before, total = [], 0.0
        for start, end in merged:
            before.append(total)
            total += end - start
        return cls(tuple(s for s, _ in merged), tuple(e for _, e in merged), tuple(before))

    @property
    def total(self) -> float:
        return self.before[-1] + self.ends[-1] - self.starts[-1] if self.starts else 0.0

    def at(self, t: float) -> float:
        """Speech seconds before ``t``."""
        i = bisect_right(self.starts, t) - 1
        if i < 0:
            return 0.0
        return self.before[i] + min(t, self.ends[i]) - self.starts[i]

    def to_time(self, s: float, *, ends_word: bool) -> float:
        """The recording time at speech time ``s``: a word's end at a passage boundary stays
        in the passage before, a start goes to the next one."""
        # (a hair of tolerance: speech times are sums of float differences)
        i = bisect_left(self.before, s - 1e-6) - 1 if ends_word else bisect_right(self.before, s + 1e-6) - 1
        i = min(max(i, 0), len(self.starts) - 1)
        return min(self.starts[i] + max(s - self.before[i], 0.0), self.ends[i])

    def passage_of(self, t: float) -> int | None:
        i = bisect_right(self.starts, t) - 1
        return i if i >= 0 and t <= self.ends[i] else None


def _split_heard(word: TimedWord) -> list[TimedWord]:
    """A heard word cut into the tokens the backend's text is cut into (CJK: one per
    character), its time shared among them by length."""
    pieces = tokens(word.text)
    if len(pieces) <= 1:
        return [word]
    lengths = [spoken_units(p) for p in pieces]
    step, cursor, result = (word.end - word.start) / sum(lengths), word.start, []
    for piece, length in zip(pieces, lengths):
        result.append(TimedWord(piece, cursor, cursor + step * length))
        cursor += step * length
    return result


def _passages_from_words(words: Sequence[TimedWord], gap: float = 0.3) -> list[Region]:
    """Passages for a caller without voice activity: words closer than ``gap`` join."""
    passages: list[list[float]] = []
    for word in sorted(words, key=lambda w: w.start):
        if passages and word.start - passages[-1][1] < gap:
            passages[-1][1] = max(passages[-1][1], word.end)
        else:
            passages.append([word.start, max(word.end, word.start + 0.05)])
    return [(s, e) for s, e in passages]


def _start_candidates(speech: SpeechTime, words: Sequence[TimedWord], grid_seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """Where a segment may start, and the pause before each place: every passage onset, every
    word start inside a passage (a passage can hold several segments) and, where speech went
    unrecognised, a grid."""
    places: dict[float, float] = {}
    for i, (start, end) in enumerate(zip(speech.starts, speech.ends)):
        places[round(start, 3)] = math.inf if i == 0 else start - speech.ends[i - 1]
    ordered = sorted(words, key=lambda w: w.start)
    inner: list[float] = []
    for k, word in enumerate(ordered):
        i = speech.passage_of(word.start)
        # a word just after its passage's onset starts where the onset does
        if i is None or word.start - speech.starts[i] < 0.3 or speech.ends[i] - word.start < 0.15:
            continue
        pause = word.start - ordered[k - 1].end if k else math.inf
        places[round(word.start, 3)] = max(0.0, pause)
        inner.append(word.start)
    inner.sort()
    for start, end in zip(speech.starts, speech.ends):
        t = start + grid_seconds
        while t < end - 0.15:
            near = bisect_left(inner, t - 1.0)
            if near >= len(inner) or inner[near] > t + 1.0:
                places.setdefault(round(t, 3), 0.0)
            t += grid_seconds
    times = np.array(sorted(places))
    return times, np.array([places[t] for t in times.tolist()])


@dataclass(frozen=True, slots=True)
class _Anchor:
    word: int  # index into the flat word list
    start: float
    end: float
    weight: float


def _pace(anchors: Sequence[_Anchor], units: Sequence[float], speech: SpeechTime, total_units: float,
          settings: RetimeSettings) -> float:
    """Seconds of speech time per letter: the anchored words' own pace, bounded by what the
    passages hold for the whole text (a transcript can skip speech but not invent it)."""
    rates = sorted((a.end - a.start) / units[a.word] for a in anchors if a.weight == 1.0 and a.end > a.start)
    measured = rates[len(rates) // 2] * 1.15 if rates else settings.default_seconds_per_letter  # plus the breaks between words
    low, high = settings.min_seconds_per_letter, settings.max_seconds_per_letter
    return min(max(measured, low), high, max(speech.total / max(total_units, 1.0), low))


def retime_segments(
    segments: Sequence[Segment],
    words: Sequence[TimedWord],
    passages: Sequence[Region] | None,
    duration: float,
    settings: RetimeSettings = RetimeSettings(),
) -> tuple[tuple[Segment, ...], RetimeStats]:
    """Segments with times taken from the audio (see the module docstring).

    ``segments``: the backend's, in the order spoken (their times only a weak prior).
    ``words``: timed words heard in the audio, in order, from any recogniser.
    ``passages``: speech (start, end) from voice activity; None to derive them from ``words``;
    empty when there is no speech, and then nothing is placed.
    ``duration``: seconds of audio; nothing is placed past it.
    Returns the re-timed segments and counts of how each was timed.
    """
    if passages is None:
        passages = _passages_from_words(words)
    speech = SpeechTime.of(passages, duration)
    tokens_per_segment = [tokens(s.content) for s in segments]
    placeable = [k for k, ws in enumerate(tokens_per_segment) if ws]
    flat = [(k, w) for k in placeable for w in tokens_per_segment[k]]
    if not speech.starts or not placeable:
        return tuple(segments), RetimeStats(len(segments), 0, 0, 0, len(segments), 0, len(flat))

    heard = [piece for word in words for piece in _split_heard(word)]  # in the order recognised
    pairs = _anchor_pairs([normalize_word(w) for _, w in flat], [normalize_word(w.text) for w in heard], settings)
    anchors = [_Anchor(i, heard[j].start, max(heard[j].end, heard[j].start), weight) for i, (j, weight) in sorted(pairs.items())]
    units = [spoken_units(w) for _, w in flat]
    pace = _pace(anchors, units, speech, sum(units), settings)
    first_word: dict[int, int] = {}
    for i, (k, _) in enumerate(flat):
        first_word.setdefault(k, i)
    segment_of_word = [k for k, _ in flat]
    order = {k: n for n, k in enumerate(placeable)}
    anchors_of: list[list[_Anchor]] = [[] for _ in placeable]
    for anchor in anchors:
        anchors_of[order[segment_of_word[anchor.word]]].append(anchor)
    needs = [sum(units[i] for i in range(first_word[k], first_word[k] + len(tokens_per_segment[k]))) * pace for k in placeable]
    priors = [None if segments[k].timing == "approximate" else segments[k].start for k in placeable]

    times, pauses = _start_candidates(speech, heard, settings.grid_seconds)
    offsets_of = [[sum(units[first_word[k]:a.word]) * pace for a in anchors_of[n]] for n, k in enumerate(placeable)]
    starts = _align_passages(speech, times, pauses, needs, priors, anchors_of, offsets_of, settings)
    span_ends = [times[c] for c in starts[1:]] + [speech.ends[-1]]

    placed: dict[int, Segment] = {}
    counts = {"aligned": 0, "interpolated": 0, "passage": 0}
    anchored_words = 0
    for n, k in enumerate(placeable):
        start, limit = float(times[starts[n]]), float(span_ends[n])
        own = range(first_word[k], first_word[k] + len(tokens_per_segment[k]))
        kept = _kept_anchors(speech, anchors_of[n], offsets_of[n], start, limit)
        anchored_words += len(kept)
        word_times = _place_words(speech, start, limit, [units[i] for i in own], {a.word - own[0]: a for a in kept.values()}, pace)
        first = kept.get(own[0])
        timing = "aligned" if first is not None and abs(first.start - start) <= 0.3 else "interpolated" if kept else "passage"
        counts[timing] += 1
        end = _snap_end(speech, word_times[-1][1], limit, settings.snap_seconds)
        placed[k] = dataclasses.replace(
            segments[k],
            start=round(min(start, duration), 3),
            end=round(min(max(end, start), duration), 3),
            words=tuple(
                Word(tokens_per_segment[k][j], round(min(s, duration), 3), round(min(e, duration), 3),
                     1.0 if (own[0] + j) in kept else None)
                for j, (s, e) in enumerate(word_times)
            ),
            timing=timing,
            anchored_share=round(len(kept) / len(own), 3),
        )
    result = _assemble(segments, placed, duration)
    stats = RetimeStats(len(segments), counts["aligned"], counts["interpolated"], counts["passage"],
                        len(segments) - len(placeable), anchored_words, len(flat))
    return result, stats


def _align_passages(
    speech: SpeechTime,
    times: np.ndarray,
    pauses: np.ndarray,
    needs: Sequence[float],
    priors: Sequence[float | None],
    anchors_of: Sequence[Sequence[_Anchor]],
    offsets_of: Sequence[Sequence[float]],
    settings: RetimeSettings,
) -> list[int]:
    """The start candidate of every segment: the monotonic path of least cost (module docstring)."""
    clock = np.array([speech.at(t) for t in times.tolist()])
    end_clock = speech.total
    scale = min(1.0, 0.95 * end_clock / (settings.min_need_share * sum(needs))) if sum(needs) else 1.0
    n, count = len(needs), len(times)
    start_cost = settings.mid_flow_start_cost * np.exp(-np.minimum(pauses, 60.0) / settings.natural_pause_seconds)

    def unary(k: int) -> np.ndarray:
        """What starting segment k at each candidate costs on its own."""
        cost = start_cost.copy()
        if anchors_of[k]:
            # the start the anchors imply: each anchor minus the words before it, trusted the
            # more the fewer words lie between (the pace is an estimate)
            implied = np.array([speech.at(a.start) - off for a, off in zip(anchors_of[k], offsets_of[k])])
            trust = np.array([a.weight / (0.3 + off) for a, off in zip(anchors_of[k], offsets_of[k])])
            target = _weighted_median(implied, trust)
            confidence = min(1.0, sum(a.weight for a in anchors_of[k]) / 2.0)
            cost += settings.anchor_cost * confidence * np.minimum(np.abs(clock - target), settings.anchor_cost_cap_seconds)
            heard_at = np.array([a.start for a in anchors_of[k]])
            weight = np.array([a.weight for a in anchors_of[k]])
            # anchors before this start would belong to the segment before
            cost += settings.anchor_outside_cost * (weight[None, :] * (heard_at[None, :] < times[:, None] - 0.1)).sum(axis=1)
        if k > 0 and anchors_of[k - 1]:
            heard_at = np.array([a.start for a in anchors_of[k - 1]])
            weight = np.array([a.weight for a in anchors_of[k - 1]])
            # the previous segment's anchors at or after this start would fall into this one
            cost += settings.anchor_outside_cost * (weight[None, :] * (heard_at[None, :] >= times[:, None] - 0.1)).sum(axis=1)
        if priors[k] is not None:
            cost += settings.backend_time_cost * np.minimum(np.abs(times - priors[k]), settings.backend_time_cap_seconds)
        return cost

    def span_cost(k: int, span: np.ndarray) -> np.ndarray:
        need = needs[k]
        cost = settings.short_speech_cost * np.maximum(0.0, 0.8 * need - span)
        cost += settings.unexplained_speech_cost * np.maximum(0.0, span - 1.5 * need)
        return np.where(span < settings.min_need_share * need * scale, np.inf, cost)

    # pull formulation: candidate c is reached from one of the candidates before it, at most
    # band_seconds earlier
    lowest = np.searchsorted(times, times - settings.band_seconds)
    # ... but always from the candidate just before, however far back it is: speech an hour apart
    # (long silences, or the pieces of a long recording) must still be reachable
    lowest = np.minimum(lowest, np.maximum(np.arange(count) - 1, 0))
    width = int(max(1, (np.arange(count) - lowest).max()))
    previous = np.arange(count)[:, None] - 1 - np.arange(width)[None, :]
    valid = previous >= lowest[:, None]
    previous = np.where(valid, previous, 0)
    span = clock[:, None] - clock[previous]
    elapsed = times[:, None] - times[previous]

    total = unary(0) + settings.unexplained_speech_cost * clock  # speech before the first segment is unexplained
    back = np.zeros((n, count), dtype=np.int64)
    for k in range(1, n):
        step = total[previous] + span_cost(k - 1, span)
        if priors[k] is not None and priors[k - 1] is not None:
            step = step + settings.backend_spacing_cost * np.minimum(np.abs(elapsed - (priors[k] - priors[k - 1])),
                                                                  settings.backend_spacing_cap_seconds)
        step = np.where(valid, step, np.inf)
        best = step.argmin(axis=1)
        back[k] = previous[np.arange(count), best]
        total = step[np.arange(count), best] + unary(k)
    total = total + span_cost(n - 1, end_clock - clock)
    last = int(np.argmin(total))
    if not np.isfinite(total[last]):  # cannot happen: scale makes the needs fit
        raise AssertionError("no placement fits the speech")
    path = [last]
    for k in range(n - 1, 0, -1):
        path.append(int(back[k][path[-1]]))
    return path[::-1]


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, cumulative[-1] / 2.0)])


def _kept_anchors(
    speech: SpeechTime, anchors: Sequence[_Anchor], offsets: Sequence[float], start: float, limit: float
) -> dict[int, _Anchor]:
    """The anchors that confirm the placement: heard inside the segment's span, in order (a
    later word never before an earlier one), and about as far into it as the words before them
    take to say (``offsets``, speech seconds at the voice's pace; a lone match heard far from
    where its word can be is a coincidence)."""
    kept: dict[int, _Anchor] = {}
    last = start - 0.3
    origin = speech.at(start)
    for anchor, offset in zip(anchors, offsets):
        into = speech.at(anchor.start) - origin
        plausible = 0.4 * offset - 0.5 <= into <= 2.5 * offset + 1.0
        if start - 0.3 <= anchor.start < limit and anchor.start >= last and plausible:
            kept[anchor.word] = anchor
            last = anchor.start
    return kept


def _pack(units: Sequence[float], left: float, right: float, pace: float, *, align_end: bool) -> list[tuple[float, float]]:
    """Times for words spoken at ``pace`` between ``left`` and ``right`` (speech time): packed
    against ``right`` (words that lead into an anchor) or against ``left`` (words that follow
    one); squeezed evenly when their natural length does not fit."""
    natural = pace * sum(units)
    room = max(right - left, 0.0)
    squeeze = min(1.0, room / natural) if natural > 0 else 0.0
    cursor = right - natural * squeeze if align_end else left
    packed = []
    for length in units:
        step = pace * length * squeeze
        packed.append((cursor, cursor + step))
        cursor += step
    return packed


def _place_words(
    speech: SpeechTime, start: float, limit: float, units: Sequence[float], anchors: dict[int, _Anchor], pace: float
) -> list[tuple[float, float]]:
    """Every word's (start, end) in the recording: anchors at their heard times, the others at
    the voice's pace in speech time between them, from ``start`` and never past ``limit``."""
    low, high = speech.at(start), speech.at(limit)
    placed: list[tuple[float, float] | None] = [None] * len(units)
    for j, anchor in anchors.items():
        # a heard word may run past the next segment's start (another voice talks over it)
        placed[j] = (max(speech.at(anchor.start), low), max(speech.at(anchor.end), speech.at(anchor.start)))
    filled: list[tuple[float, float]] = []
    j = 0
    while j < len(units):
        if placed[j] is not None:
            filled.append(placed[j])  # type: ignore[arg-type]
            j += 1
            continue
        run_end = j
        while run_end < len(units) and placed[run_end] is None:
            run_end += 1
        left = filled[-1][1] if filled else low
        if run_end < len(units):  # words leading into an anchor
            right = max(placed[run_end][0], left)  # type: ignore[index]
            filled += _pack(units[j:run_end], left, right, pace, align_end=bool(filled))
        else:  # words after the last anchor, at the voice's pace, not past the span
            natural = pace * sum(units[j:run_end])
            filled += _pack(units[j:run_end], left, min(left + natural, high), pace, align_end=False)
        j = run_end
    return [(speech.to_time(s, ends_word=False), speech.to_time(max(e, s), ends_word=True)) for s, e in filled]


def _snap_end(speech: SpeechTime, end: float, limit: float, snap_seconds: float) -> float:
    """The passage's offset when the segment's last word ends within ``snap_seconds`` of it
    (and it comes before the next segment)."""
    i = speech.passage_of(end)
    if i is not None and speech.ends[i] - end <= snap_seconds and speech.ends[i] <= limit:
        return speech.ends[i]
    return end


def _assemble(segments: Sequence[Segment], placed: dict[int, Segment], duration: float) -> tuple[Segment, ...]:
    """All segments in order: the placed ones, the word-less ones on the backend's time kept in
    order; a voice's previous segment ends where its next one starts."""
    result: list[Segment] = []
    last_of_speaker: dict[str | None, int] = {}
    for k, segment in enumerate(segments):
        previous_start = result[-1].start if result else 0.0
        if k in placed:
            current = placed[k]
            if current.start < previous_start:
                current = dataclasses.replace(current, start=previous_start, end=max(current.end or previous_start, previous_start))
        else:  # no words to place: the backend's time, in order and inside the audio
            start = min(max(segment.start, previous_start), duration)
            end = None if segment.end is None else min(max(segment.end, start), duration)
            current = dataclasses.replace(segment, timing="model", start=start, end=end)
        prior = last_of_speaker.get(current.speaker)
        if prior is not None and result[prior].end is not None and result[prior].end > current.start:
            # the same voice cannot speak twice at once: end its previous segment here
            result[prior] = dataclasses.replace(result[prior], end=current.start)
        last_of_speaker[current.speaker] = len(result)
        result.append(current)
    return tuple(result)
