"""Running the stages for a batch of inputs: each input on its own, failures contained.

ingest expands every location first (so the progress bar knows the total), then each input
goes normalize -> (analyze -> post-process -> export) per task. A failure anywhere is
recorded against that input with the stage and the plugin that raised, and the batch goes on.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from runpipe.errors import OutputError, RunpipeError, StageError, describe
from runpipe.model import Artifact, Document, InputResult, MediaItem, RunResult
from runpipe.outputs import check_outputs, plan_output_names, write_index
from runpipe.paths import cache_dir
from runpipe.run import ProgressEvent, RunContext

if TYPE_CHECKING:  # pragma: no cover
    from runpipe.engine import Engine

log = logging.getLogger("runpipe.runner")
DEFAULT_CONCURRENCY = 4


class _InputFailed(Exception):
    def __init__(self, error: StageError):
        self.error = error


def run_stage(engine: "Engine", run: RunContext, stage: str, item: MediaItem, call: Callable[[], Any]) -> Any:
    """One stage for one input, ``call`` being its hook: the stage's progress events and the
    ``runpipe_stage_finish`` / ``runpipe_stage_error`` hooks around it, as every command has
    them (a run, ``runpipe estimate``, ``runpipe export``). A failure is a :class:`StageError`
    naming the stage and the plugin that raised."""
    run.emit(ProgressEvent("stage_start", item=item, stage=stage))
    try:
        value = call()
        if value is None:
            raise RunpipeError(f"no plugin implemented the {stage} stage")
    except Exception as exc:
        plugin = engine.plugin_of(exc)
        log.debug("%s failed for %s", stage, item.name, exc_info=True)
        engine.pm.hook.runpipe_stage_error(stage=stage, item=item, error=exc, run=run)
        raise StageError(stage, item.name, plugin, exc) from exc
    engine.pm.hook.runpipe_stage_finish(stage=stage, item=item, value=value, run=run)
    run.emit(ProgressEvent("stage_done", item=item, stage=stage))
    return value


@contextmanager
def _input_lock(run: RunContext, item: MediaItem) -> Iterator[None]:
    """Hold this input against other runpipe processes: two runs on the same input at once would
    both pay for every analysis; the second waits, then finds the first one's stored results.
    One thread holds at most one such lock, so runs can never wait on each other in a circle."""
    path = cache_dir("locks") / f"{hashlib.sha256(item.uri.encode('utf-8', 'surrogateescape')).hexdigest()[:32]}.lock"
    with open(path, "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            run.message("waiting for another runpipe that is working on this input", item)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def process_input(engine: "Engine", run: RunContext, item: MediaItem) -> InputResult:
    """All stages for one input. Never raises for a problem with this input."""
    with _input_lock(run, item):
        return _process_input(engine, run, item)


def _process_input(engine: "Engine", run: RunContext, item: MediaItem) -> InputResult:
    hook = engine.pm.hook
    timings: dict[str, float] = {}
    documents: list[Document] = []
    artifacts: list[Artifact] = []

    def timed(stage: str, call: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        try:
            return run_stage(engine, run, stage, item, call)
        except StageError as error:
            raise _InputFailed(error) from error.cause
        finally:
            timings[stage] = round(timings.get(stage, 0.0) + time.perf_counter() - started, 4)

    run.emit(ProgressEvent("input_start", item=item))
    try:
        try:
            check_outputs(run)  # before anything is transcoded, uploaded or paid for
        except OutputError as exc:
            raise _InputFailed(StageError("export", item.name, None, exc)) from exc
        audio = timed("normalize", lambda: hook.runpipe_normalize(item=item, run=run))
        for task in run.tasks:
            analysis = timed("analyze", lambda: hook.runpipe_analyze(audio=audio, task=task, run=run))
            document = timed(
                "postprocess", lambda: hook.runpipe_postprocess(analysis=analysis, audio=audio, task=task, run=run)
            )
            documents.append(document)
            artifacts.extend(timed("export", lambda: hook.runpipe_export(document=document, run=run)))
        result = InputResult(item, "done", tuple(documents), tuple(artifacts), timings=timings)
    except _InputFailed as failed:
        error = failed.error
        result = InputResult(
            item, "failed", tuple(documents), tuple(artifacts), error=str(error),
            failed_stage=error.stage, failed_plugin=error.plugin, timings=timings,
        )
    if result.status == "failed" and run.interrupted.is_set():
        return result  # a casualty of Ctrl-C (a request cut off), recorded as interrupted by the runner
    record_input(run, result)
    hook.runpipe_input_finish(result=result, run=run)
    run.emit(ProgressEvent("input_done", item=item, detail=result.status, data={"error": result.error}))
    return result


def record_input(run: RunContext, result: InputResult) -> None:
    """Store what happened to one input in the run's records (``runpipe status``)."""
    tokens = sum((d.usage.prompt_tokens or 0) + (d.usage.output_tokens or 0) for d in result.documents)
    run.store.record_input(
        run.run_id,
        {
            "uri": result.item.uri, "status": result.status, "stage": result.failed_stage,
            "plugin": result.failed_plugin, "error": result.error, "timings": dict(result.timings),
            "tokens": tokens or None, "outputs": [str(a.path) for a in result.artifacts],
        },
    )


def ingest(engine: "Engine", run: RunContext, locations: Iterable[str]) -> tuple[list[MediaItem], list[InputResult]]:
    """Expand locations into items; a location that yields nothing or fails is a failed input."""
    items: list[MediaItem] = []
    failures: list[InputResult] = []
    seen: set[str] = set()
    for location in locations:
        placeholder = MediaItem(uri=location, kind="url" if "://" in location else "file", name=location)
        try:
            found = engine.pm.hook.runpipe_ingest(location=location, run=run)
        except Exception as exc:
            error = StageError("ingest", location, engine.plugin_of(exc), exc)
            failures.append(InputResult(placeholder, "failed", error=str(error), failed_stage="ingest", failed_plugin=error.plugin))
            continue
        if not found:
            failures.append(InputResult(placeholder, "failed", error=f"{location}: ingest found no media here", failed_stage="ingest"))
            continue
        for item in found:
            if item.uri not in seen:  # the same file named twice is processed once
                seen.add(item.uri)
                items.append(item)
    return items, failures


def _in_threads(engine: "Engine", run: RunContext, items: list[MediaItem], workers: int) -> list[InputResult]:
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="runpipe")
    try:
        results = list(pool.map(lambda item: process_input(engine, run, item), items))
    except BaseException:
        # Ctrl-C: inputs not yet started never start, and requests in flight are not waited
        # for (the CLI exits at once; the rerun resumes from the store)
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return results


def run_pipeline(
    engine: "Engine", run: RunContext, locations: list[str], *, concurrency: int | None, executor: str | None,
    executor_options: dict[str, Any] | None = None,
) -> RunResult:
    items, failures = ingest(engine, run, locations)
    for failure in failures:
        record_input(run, failure)
    run.store.set_total(run.run_id, len(items) + len(failures))
    run.output_names = plan_output_names(run, items)  # before any work: no input overwrites another's outputs
    engine.pm.hook.runpipe_run_start(run=run, items=items)
    run.emit(ProgressEvent("run_start", total=len(items) + len(failures)))
    for failure in failures:
        run.emit(ProgressEvent("input_done", item=failure.item, detail="failed", data={"error": failure.error}))
    # a batching backend wants many inputs waiting at once so they share one job
    wanted = max((run.backend(task.backend).parallelism or 0 for task in run.tasks), default=0) if items else 0
    workers = max(1, min(max(concurrency or DEFAULT_CONCURRENCY, wanted), len(items) or 1))
    try:
        if executor:
            results = list(engine.component("executors", executor, executor_options or {}).map(engine, run, items, workers))
        else:
            results = _in_threads(engine, run, items, workers)
    except KeyboardInterrupt:
        run.interrupted.set()
        run.store.interrupt_run(run.run_id, [item.uri for item in items])
        raise
    result = RunResult(run.pipeline.name, tuple(failures) + tuple(results), run_id=run.run_id)
    try:
        write_index(run, result)
    except Exception as exc:  # the per-input outputs are written; an index problem must not hide them
        run.message(f"batch index not written: {describe(exc)}")
    run.store.finish_run(run.run_id, "done" if result.ok else "failed")
    engine.pm.hook.runpipe_run_finish(result=result, run=run)
    run.emit(ProgressEvent("run_done", data={"ok": result.ok}))
    return result
