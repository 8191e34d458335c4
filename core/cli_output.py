"""What the CLI shows: a progress bar over inputs and stages, and the run summary."""

from __future__ import annotations

import threading
from typing import Any

import click
from tqdm import tqdm

from runpipe.model import RunResult
from runpipe.run import ProgressEvent

STAGES_PER_INPUT = 4  # normalize, analyze, postprocess, export


class ProgressPrinter:
    """Subscribes to engine events; draws one bar (steps = inputs x stages) on stderr."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.messages: list[str] = []
        self._bar: tqdm | None = None
        self._lock = threading.Lock()

    def __call__(self, event: ProgressEvent) -> None:
        with self._lock:
            if event.kind == "message" and event.detail:
                if event.stage is None:  # window progress is for the bar only
                    self.messages.append(f"{event.item.name}: {event.detail}" if event.item else event.detail)
            if not self.enabled:
                return
            if event.kind == "run_start":
                self._bar = tqdm(total=(event.total or 0) * STAGES_PER_INPUT, unit="step", desc="runpipe", leave=False)
            elif self._bar is None:
                return
            elif event.kind == "stage_start" and event.item:
                self._bar.set_postfix_str(f"{event.stage}: {event.item.name}"[:60])
            elif event.kind == "stage_done":
                self._bar.update(1)
            elif event.kind == "input_done":
                # a failed input skips its remaining stages; keep the bar honest
                self._bar.n = min(self._bar.total, self._bar.n)
                self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def summary_dict(result: RunResult, messages: list[str]) -> dict[str, Any]:
    return {
        "run_id": result.run_id,
        "pipeline": result.pipeline,
        "ok": result.ok,
        "messages": messages,
        "inputs": [
            {
                "input": r.item.uri,
                "status": r.status,
                "error": r.error,
                "stage": r.failed_stage,
                "plugin": r.failed_plugin,
                "timings": dict(r.timings),
                "outputs": [str(a.path) for a in r.artifacts],
                "backend": r.documents[0].backend if r.documents else None,
                "tokens": sum((d.usage.prompt_tokens or 0) + (d.usage.output_tokens or 0) for d in r.documents) or None,
                "segments": sum(len(d.segments) for d in r.documents),
                "notes": list(dict.fromkeys(n for d in r.documents for n in d.notes)),
            }
            for r in result.inputs
        ],
    }


def print_summary(result: RunResult, messages: list[str]) -> None:
    done = [r for r in result.inputs if r.status == "done"]
    for r in done:
        segments = sum(len(d.segments) for d in r.documents)
        backend = r.documents[0].backend if r.documents else "?"
        click.echo(f"done    {r.item.name}  ({backend}, {segments} segments, {sum(r.timings.values()):.1f} s)")
        for artifact in r.artifacts:
            click.echo(f"        {artifact.path}")
        for note in dict.fromkeys(n for d in r.documents for n in d.notes):
            click.echo(f"        note: {note}")
    for r in result.failed:
        click.secho(f"failed  {r.error}", fg="red", err=True)
    for message in messages:
        click.echo(f"note    {message}")
    click.echo(f"{len(done)} of {len(result.inputs)} inputs done" + (f", {len(result.failed)} failed" if result.failed else "") + f" (run {result.run_id})")
