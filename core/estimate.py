"""Preflight: what a run would send, without calling a backend (unless asked to count).

Inputs go through the same ingest and normalize hooks as a run, with the same stage_finish /
stage_error hooks (so a plugin that replaces, wraps or watches a stage is honoured); each
task's backend says what its request would cost (:meth:`runpipe.interfaces.Backend.estimate`).
"""

from __future__ import annotations

from typing import Any

from runpipe.errors import StageError, describe
from runpipe.pipeline.spec import Pipeline
from runpipe.runner import ingest, run_stage


def estimate(engine: Any, pipeline: Pipeline, inputs: list[str], *, backend: str | None, count_tokens: bool) -> list[dict[str, Any]]:
    """One row per input: duration, sizes, and per task what its backend would be sent.

    The row's ``audio_tokens`` and ``requests`` are sums over tasks (each request sends the audio), its
    ``request_bytes`` and ``delivery`` those of the largest request.
    """
    from runpipe.run import RunContext

    tasks = engine.check(pipeline, backend)
    run = RunContext(engine, pipeline, tasks, pipeline.base_dir, engine.store, "estimate")
    locations = inputs or [str(pipeline.base_dir / loc) if "://" not in loc else loc for loc in pipeline.ingest.inputs]
    items, failures = ingest(engine, run, locations)
    rows: list[dict[str, Any]] = [{"input": f.item.uri, "error": f.error} for f in failures]
    backends = {}
    for task in tasks:
        name = engine.resolve_backend(task.backend)
        options = pipeline.analyze.backends.get(name, {})
        backends[task.name] = (name, engine.registries.backends.get(name)(options))  # not warmed up: nothing loads
    for item in items:
        try:
            audio = run_stage(engine, run, "normalize", item, lambda: engine.pm.hook.runpipe_normalize(item=item, run=run))
        except StageError as error:
            rows.append({"input": item.uri, "error": describe(error.cause)})
            continue
        per_task = []
        for task in tasks:
            name, instance = backends[task.name]
            cost = instance.estimate(audio, task)
            per_task.append({"task": task.name, "backend": name, "audio_tokens": cost.audio_tokens,
                             "request_bytes": cost.request_bytes, "delivery": cost.delivery, "requests": cost.requests})
        tokens = [t["audio_tokens"] for t in per_task if t["audio_tokens"] is not None]
        largest = max(per_task, key=lambda t: t["request_bytes"] or 0, default=None)
        row = {
            "input": item.uri,
            "duration_s": audio.duration,
            "audio_tokens": sum(tokens) if tokens else None,
            "requests": sum(t["requests"] for t in per_task),
            "bytes_before": audio.bytes_before,
            "bytes_after": audio.bytes_after,
            "request_bytes": largest["request_bytes"] if largest else None,
            "delivery": largest["delivery"] if largest else None,
            "tasks": per_task,
        }
        if count_tokens:
            row["counted_tokens"] = sum(filter(None, (run.backend(t.backend).count_tokens(audio, t) for t in tasks))) or None
        rows.append(row)
    return rows
