"""Built-in analyze stage: pick the task's backend, cut a time range or long audio into
windows, answer each window once (stored in the run store, so a rerun repeats nothing), and
stitch the answers back onto the input's timeline."""

from __future__ import annotations

import dataclasses

from runpipe.chunking import plan_windows, stitch
from runpipe.hookspecs import hookimpl
from runpipe.media import slice_audio
from runpipe.model import Analysis, AudioFile, Task, TimeRange
from runpipe.run import ProgressEvent, RunContext
from runpipe.serialize import analysis_from_dict, analysis_to_dict
from runpipe.store import cache_key

CACHE_KIND = "analysis"


def _analyze_window(run: RunContext, backend_name: str, audio: AudioFile, task: Task, window: TimeRange | None) -> Analysis:
    """One backend call for ``window`` of ``audio`` (None: all of it), via the run store."""
    backend = run.backend(backend_name)
    key = cache_key(
        "analysis/1", audio.content_hash, audio.path.name if audio.path else audio.source.uri,
        backend_name, run.plugin_version("backends", backend_name), dict(backend.options),
        task.prompt, task.schema, task.model, task.system_instruction, dict(task.generation), dict(task.options),
        [window.start, window.end] if window else None,
    )
    if run.use_cache:
        stored = run.store.get(CACHE_KIND, key)
        if stored is not None:
            return analysis_from_dict(stored)
    if window is not None and audio.path is not None:
        # Cut the window out rather than asking the model to find it: models are poor at
        # finding a stretch of audio by its timestamps.
        analysis = backend.analyze(slice_audio(audio, window), task)
        analysis = dataclasses.replace(analysis, offset=analysis.offset + window.start)
    else:
        analysis = backend.analyze(audio, task, window=window)
    run.store.put(CACHE_KIND, key, analysis_to_dict(analysis))
    return analysis


@hookimpl(trylast=True)
def runpipe_analyze(audio: AudioFile, task: Task, run: RunContext) -> Analysis:
    backend_name = run.backend_name(task.backend)
    backend_cls = type(run.backend(backend_name))
    span = task.time_range or TimeRange(0.0, audio.duration)
    if audio.duration is not None and span.end is not None:
        span = TimeRange(span.start, min(span.end, audio.duration))
    chunking = run.pipeline.analyze.chunking
    limits = backend_cls.limits
    max_seconds = chunking.max_seconds or limits.preferred_chunk_seconds or limits.max_audio_seconds
    overlap = chunking.overlap_seconds if chunking.overlap_seconds is not None else limits.chunk_overlap_seconds
    windows = plan_windows(audio, span, max_seconds, overlap) if audio.path is not None else [task.time_range]
    if len(windows) == 1:
        return _analyze_window(run, backend_name, audio, task, windows[0])
    analyses = []
    for index, window in enumerate(windows, start=1):
        run.emit(ProgressEvent("message", item=audio.source, stage="analyze", detail=f"window {index}/{len(windows)} {window}"))
        analyses.append(_analyze_window(run, backend_name, audio, task, window))
    return stitch(analyses, windows)
