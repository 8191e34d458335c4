"""Built-in analyze stage: pick the task's backend, cut a time range or long audio into
windows, answer each window once (stored in the run store, so a rerun repeats nothing), and
stitch the answers back onto the input's timeline.

A window whose answer is too long for one request (the backend raises
:class:`runpipe.errors.AnswerTooLong`: cut off at the output limit, or stuck repeating) is split in two at the silence nearest its middle and each half is asked for on its own, down
to windows of ``chunking.min_split_seconds`` (default :data:`MIN_SPLIT_SECONDS`); below that the input fails with the reason. The split
is stored too, so a rerun goes straight to the halves.
"""

from __future__ import annotations

import dataclasses
import logging
from concurrent.futures import ThreadPoolExecutor

from runpipe.chunking import find_silences, plan_windows, split_in_two, stitch
from runpipe.errors import AnswerTooLong, BackendError
from runpipe.hookspecs import hookimpl
from runpipe.media import slice_audio
from runpipe.model import Analysis, AudioFile, Task, TimeRange
from runpipe.run import ProgressEvent, RunContext
from runpipe.serialize import analysis_from_dict, analysis_to_dict
from runpipe.store import cache_key

log = logging.getLogger("runpipe.analyze")

CACHE_KIND = "analysis"
SPLIT_KIND = "analysis_split"
#: Windows are not split below this many seconds, unless the pipeline says (``chunking.min_split_seconds``).
MIN_SPLIT_SECONDS = 60.0
#: Windows of one input asked for at once, unless the pipeline says (``chunking.parallel``) or
#: the backend wants more (to batch them).
WINDOW_PARALLELISM = 4


def _window_key(run: RunContext, backend_name: str, audio: AudioFile, task: Task, window: TimeRange | None) -> str:
    backend = run.backend(backend_name)
    return cache_key(
        "analysis/1", audio.content_hash, audio.path.name if audio.path else audio.source.uri,
        backend_name, run.plugin_version("backends", backend_name), dict(backend.options),
        task.prompt, task.schema, task.model, task.system_instruction, dict(task.generation), dict(task.options),
        list(task.vocabulary),
        [window.start, window.end] if window else None,
    )


def _analyze_window(run: RunContext, backend_name: str, audio: AudioFile, task: Task, window: TimeRange | None, overlap: float = 0.0) -> Analysis:
    """The answer for ``window`` of ``audio`` (None: all of it), via the run store; one backend
    call, or two halves (recursively) when the answer is too long for one request."""
    key = _window_key(run, backend_name, audio, task, window)
    if run.use_cache:
        stored = run.store.get(CACHE_KIND, key)
        if stored is not None:
            return analysis_from_dict(stored)
        halves = run.store.get(SPLIT_KIND, key)
        if halves:
            return _analyze_halves(run, backend_name, audio, task, [TimeRange(a, b) for a, b in halves], overlap)
    backend = run.backend(backend_name)
    try:
        if window is not None and audio.path is not None:
            # Cut the window out rather than asking the model to find it: models are poor at
            # finding a stretch of audio by its timestamps.
            analysis = backend.analyze(slice_audio(audio, window), task)
            analysis = dataclasses.replace(analysis, offset=analysis.offset + window.start)
        else:
            analysis = backend.analyze(audio, task, window=window)
    except AnswerTooLong as exc:
        halves = _halves(audio, window, overlap, exc, run.pipeline.analyze.chunking.min_split_seconds or MIN_SPLIT_SECONDS)
        run.store.put(SPLIT_KIND, key, [[h.start, h.end] for h in halves])
        log.warning("%s: %s; splitting %s in two", audio.source.name, exc.reason, window or "the audio")
        return _analyze_halves(run, backend_name, audio, task, halves, overlap)
    run.store.put(CACHE_KIND, key, analysis_to_dict(analysis))
    return analysis


def _halves(audio: AudioFile, window: TimeRange | None, overlap: float, exc: AnswerTooLong, floor: float) -> list[TimeRange]:
    span = window or TimeRange(0.0, audio.duration)
    where = f"window {span}" if window is not None else "the whole audio"
    if audio.path is None or span.end is None:
        raise BackendError(
            f"the answer for {where} is too long for one request ({exc.reason}), and audio of unknown length "
            f"cannot be split; last error: {exc}", raw=exc.raw,
        ) from exc
    length = span.end - span.start
    if length / 2 < floor:
        raise BackendError(
            f"the answer for {where} ({length:.0f} s) is still too long for one request ({exc.reason}), and windows "
            f"are not split below {floor:g} s; last error: {exc}", raw=exc.raw,
        ) from exc
    return split_in_two(span, find_silences(audio, span=span), overlap)


def _analyze_halves(run: RunContext, backend_name: str, audio: AudioFile, task: Task, halves: list[TimeRange], overlap: float) -> Analysis:
    analyses = []
    for half in halves:
        run.emit(ProgressEvent("message", item=audio.source, stage="analyze", detail=f"split window {half}"))
        analyses.append(_analyze_window(run, backend_name, audio, task, half, overlap))
    return stitch(analyses, halves, task.schema)


@hookimpl(trylast=True)
def runpipe_analyze(audio: AudioFile, task: Task, run: RunContext) -> Analysis:
    backend_name = run.backend_name(task.backend)
    backend_cls = type(run.backend(backend_name))
    if audio.path is None and not backend_cls.accepts_urls:
        raise BackendError(
            f"backend {backend_name} cannot take a URL ({audio.source.uri}): runpipe does not download; "
            f"use --backend gemini, or download the media and give the file"
        )
    span = task.time_range or TimeRange(0.0, audio.duration)
    if audio.duration is not None and span.end is not None:
        span = TimeRange(span.start, min(span.end, audio.duration))
    chunking = run.pipeline.analyze.chunking
    limits = run.backend(backend_name).window_limits(task)
    max_seconds = chunking.max_seconds or limits.preferred_chunk_seconds or limits.max_audio_seconds
    overlap = chunking.overlap_seconds if chunking.overlap_seconds is not None else limits.chunk_overlap_seconds
    windows = plan_windows(audio, span, max_seconds, overlap) if audio.path is not None else [task.time_range]
    if len(windows) == 1:
        return _analyze_window(run, backend_name, audio, task, windows[0], overlap)

    def one(numbered: tuple[int, TimeRange | None]) -> Analysis:
        index, window = numbered
        run.emit(ProgressEvent("message", item=audio.source, stage="analyze", detail=f"window {index}/{len(windows)} {window}"))
        return _analyze_window(run, backend_name, audio, task, window, overlap)

    # Windows are independent requests: a remote backend answers them side by side (and a
    # batching one puts them in one job); a local one serializes them on its own lock.
    workers = min(len(windows), run.backend(backend_name).parallelism or chunking.parallel or WINDOW_PARALLELISM)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="runpipe-window") as pool:
        analyses = list(pool.map(one, enumerate(windows, start=1)))
    return stitch(analyses, windows, task.schema)
