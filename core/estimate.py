"""Preflight: what a run would send, without calling a backend (unless asked to count)."""

from __future__ import annotations

from typing import Any

from runpipe.errors import RunpipeError, describe
from runpipe.media import normalize
from runpipe.pipeline.spec import Pipeline
from runpipe.runner import ingest
from runpipe.tasks import resolve_tasks

AUDIO_TOKENS_PER_SECOND = 32  # Gemini's documented rate
INLINE_LIMIT_BYTES = 20_000_000  # Gemini's limit for a whole request, base64 included


def estimate(engine: Any, pipeline: Pipeline, inputs: list[str], *, backend: str | None, count_tokens: bool) -> list[dict[str, Any]]:
    from runpipe.run import RunContext

    tasks = resolve_tasks(pipeline, engine.registries.prompts, backend)
    run = RunContext(engine, pipeline, tasks, pipeline.base_dir, engine.store, "estimate")
    locations = inputs or [str(pipeline.base_dir / loc) for loc in pipeline.ingest.inputs]
    items, failures = ingest(engine, run, locations)
    rows: list[dict[str, Any]] = [{"input": f.item.uri, "error": f.error} for f in failures]
    prompt_bytes = sum(len(t.prompt.encode()) + len(str(t.schema)) for t in tasks)
    for item in items:
        if item.kind == "url":
            rows.append({"input": item.uri, "duration_s": None, "audio_tokens": None, "request_bytes": prompt_bytes, "delivery": "file_data URL (not downloaded)"})
            continue
        try:
            audio = normalize(item, pipeline.normalize)
        except RunpipeError as exc:
            rows.append({"input": item.uri, "error": describe(exc)})
            continue
        request = (audio.bytes_after or 0) * 4 // 3 + prompt_bytes
        row = {
            "input": item.uri,
            "duration_s": audio.duration,
            "audio_tokens": int(round((audio.duration or 0) * AUDIO_TOKENS_PER_SECOND)),
            "bytes_before": audio.bytes_before,
            "bytes_after": audio.bytes_after,
            "request_bytes": request,
            "delivery": "inline" if request < INLINE_LIMIT_BYTES else "Files API upload",
            "tasks": len(tasks),
        }
        if count_tokens:
            row["counted_tokens"] = sum(filter(None, (run.backend(t.backend).count_tokens(audio, t) for t in tasks))) or None
        rows.append(row)
    return rows
