"""Long audio: plan windows that end in silences, and stitch the windows' answers together.

Each window overlaps its neighbours by a little so no word is cut in half, but *owns* only
the stretch between its two cut points: an answer's item that starts outside what its window
owns is the neighbour's duplicate and is dropped. Timestamps come back shifted onto the
input's timeline.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Mapping, Sequence

import ffmpeg as ffmpeg_python

from runpipe import ffmpeg
from runpipe.answer import shift_item
from runpipe.model import Analysis, AudioFile, ModelUse, TimeRange, Usage

_SILENCE_START = re.compile(r"silence_start: (-?\d+(?:\.\d+)?)")
_SILENCE_END = re.compile(r"silence_end: (-?\d+(?:\.\d+)?)")


def find_silences(
    audio: AudioFile, noise_db: int = -35, min_seconds: float = 0.4, span: TimeRange | None = None
) -> list[tuple[float, float]]:
    """Stretches of silence in ``audio`` (only within ``span`` if given) as (start, end) seconds
    on the audio's timeline, from ffmpeg's silencedetect."""
    seek: dict[str, str] = {}
    offset = 0.0
    if span is not None:
        offset = span.start
        seek["ss"] = f"{span.start:.3f}"
        if span.end is not None:
            seek["t"] = f"{span.end - span.start:.3f}"
    detect = ffmpeg_python.input(str(audio.path), **seek).filter("silencedetect", n=f"{noise_db}dB", d=min_seconds)
    stderr = ffmpeg.run(detect.output("-", f="null"), log_level="info")
    starts = [float(x) + offset for x in _SILENCE_START.findall(stderr)]
    ends = [float(x) + offset for x in _SILENCE_END.findall(stderr)]
    last = (span.end if span is not None and span.end is not None else None) or audio.duration
    return [(s, ends[i] if i < len(ends) else (last or s)) for i, s in enumerate(starts)]


def split_in_two(span: TimeRange, silences: Sequence[tuple[float, float]], overlap: float) -> list[TimeRange]:
    """``span`` as two overlapping halves, cut in the silence nearest its middle (within its
    middle half; a hard cut in the middle if there is none)."""
    assert span.end is not None
    length = span.end - span.start
    middle = span.start + length / 2
    mids = [(a + b) / 2 for a, b in silences if span.start + length / 4 <= (a + b) / 2 <= span.end - length / 4]
    cut = min(mids, key=lambda m: abs(m - middle)) if mids else middle
    return [TimeRange(span.start, min(span.end, cut + overlap)), TimeRange(max(span.start, cut - overlap), span.end)]


def choose_cuts(span: TimeRange, max_seconds: float, silences: Sequence[tuple[float, float]]) -> list[float]:
    """Cut points inside ``span`` so no piece is longer than ``max_seconds``; each cut sits in the
    middle of the latest silence that keeps the piece short enough (a hard cut if none)."""
    assert span.end is not None
    cuts: list[float] = []
    start = span.start
    while span.end - start > max_seconds:
        limit = start + max_seconds
        earliest = start + max_seconds / 2  # don't make tiny pieces: short windows make models worse
        mids = [(a + b) / 2 for a, b in silences if earliest <= (a + b) / 2 <= limit]
        cut = max(mids) if mids else limit
        cuts.append(cut)
        start = cut
    return cuts


def plan_windows(audio: AudioFile, span: TimeRange, max_seconds: float | None, overlap: float) -> list[TimeRange | None]:
    """Windows covering ``span`` of ``audio``; ``[None]`` means "the whole file in one go"."""
    whole = span.start <= 0 and (span.end is None or audio.duration is None or span.end >= audio.duration)
    length = (span.end or audio.duration or 0) - span.start
    if not max_seconds or length <= max_seconds:
        return [None] if whole else [span]
    cuts = choose_cuts(span, max_seconds, find_silences(audio))
    edges = [span.start, *cuts, span.end]
    return [
        TimeRange(max(span.start, a - overlap), min(span.end, b + overlap))  # type: ignore[type-var]
        for a, b in zip(edges, edges[1:])
    ]


def owned_ranges(windows: Sequence[TimeRange | None]) -> list[tuple[float, float]]:
    """The stretch each window answers for: from the previous cut to the next."""
    bounds = []
    for index, window in enumerate(windows):
        assert window is not None
        lo = (window.start + windows[index - 1].end) / 2 if index else window.start  # type: ignore[union-attr, operator]
        hi = (window.end + windows[index + 1].start) / 2 if index + 1 < len(windows) else float("inf")  # type: ignore[union-attr, operator]
        bounds.append((lo, hi))
    return bounds


def stitch(analyses: Sequence[Analysis], windows: Sequence[TimeRange | None], schema: Mapping[str, Any] | None = None) -> Analysis:
    """One answer on the input's timeline from the answers of consecutive windows.

    Lists are joined (items kept by the window that owns their start), texts concatenated; a
    field the ``schema`` limits to an ``enum`` (an overall mood, say) takes the value most windows
    gave, because two joined enum words are no longer a valid answer.
    """
    owned = owned_ranges(windows)
    merged: dict[str, Any] = {}
    summaries = []
    properties = (schema or {}).get("properties") or {}
    votes: dict[str, Counter] = {}
    usage = Usage()
    for analysis, (lo, hi) in zip(analyses, owned):
        usage = usage + analysis.usage
        for key, value in analysis.data.items():
            if isinstance(value, list) and all(isinstance(v, Mapping) for v in value):
                for item in value:
                    start, shifted = shift_item(item, analysis.offset)
                    if start is None or lo <= start < hi:
                        merged.setdefault(key, []).append(shifted)
                merged.setdefault(key, [])
            elif isinstance(value, str) and "enum" in (properties.get(key) or {}):
                votes.setdefault(key, Counter())[value] += 1
            elif key == "summary" and isinstance(value, str):
                if value.strip():
                    summaries.append(value.strip())
            elif key not in merged:
                merged[key] = value
            elif isinstance(value, str) and value.strip() and value.strip() not in str(merged[key]):
                merged[key] = f"{merged[key]}\n\n{value.strip()}"
    for key, counts in votes.items():
        merged[key] = counts.most_common(1)[0][0]  # ties: the earliest window's value
    if summaries or "summary" in analyses[0].data:
        merged["summary"] = "\n\n".join(summaries)
    first = analyses[0]
    return Analysis(
        task=first.task,
        data=merged,
        backend=first.backend,
        model=first.model,
        usage=usage,
        offset=0.0,
        provenance={**first.provenance, "window_provenance": [a.provenance for a in analyses]},
        windows=tuple(w for w in windows if w is not None),
        estimated_fields=tuple(sorted({f for a in analyses for f in a.estimated_fields})),
        models=_summed_models(analyses),
        notes=tuple(dict.fromkeys(note for a in analyses for note in a.notes)),
    )


def _summed_models(analyses: Sequence[Analysis]) -> tuple[ModelUse, ...]:
    """Each (role, model) once, with its usage over all windows."""
    usages: dict[tuple[str, str], Usage] = {}
    for analysis in analyses:
        for use in analysis.models:
            usages[(use.role, use.model)] = usages.get((use.role, use.model), Usage()) + use.usage
    return tuple(ModelUse(role, model, usage) for (role, model), usage in usages.items())
