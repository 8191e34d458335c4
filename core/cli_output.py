"""What the CLI shows: a progress bar over inputs and stages, and the run summary."""

from __future__ import annotations

import threading
from typing import Any

import click
from tqdm import tqdm

from runpipe.model import RunResult
from runpipe.run import ProgressEvent

STAGES = ("normalize", "analyze", "postprocess", "export")


class ProgressPrinter:
    """Subscribes to engine events; draws one bar per stage (inputs through that stage) on
    stderr, so a batch shows where its inputs are: transcoding, waiting on the model, ..."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.messages: list[str] = []
        self._bars: dict[str, tqdm] = {}
        self._passed: dict[str, set[str]] = {}  # input uri -> stages it has been through
        self._lock = threading.Lock()

    def __call__(self, event: ProgressEvent) -> None:
        with self._lock:
            if event.kind == "message" and event.detail and event.stage is None:  # window progress is for the bar only
                self.messages.append(f"{event.item.name}: {event.detail}" if event.item else event.detail)
            if not self.enabled:
                return
            if event.kind == "run_start":
                width = max(map(len, STAGES))
                self._bars = {
                    stage: tqdm(total=event.total or 0, desc=stage.ljust(width), unit="input", position=index, leave=False)
                    for index, stage in enumerate(STAGES)
                }
            elif event.kind == "stage_start" and event.stage in self._bars and event.item:
                self._bars[event.stage].set_postfix_str(event.item.name[:40])
            elif event.kind == "message" and event.stage in self._bars and event.detail:
                self._bars[event.stage].set_postfix_str(event.detail[:40])
            elif event.kind == "stage_done" and event.stage in self._bars and event.item:
                passed = self._passed.setdefault(event.item.uri, set())
                if event.stage not in passed:  # with several tasks an input passes a stage more than once
                    passed.add(event.stage)
                    self._bars[event.stage].update(1)
            elif event.kind == "input_done" and event.detail == "failed" and event.item:
                passed = self._passed.get(event.item.uri, set())
                for stage, bar in self._bars.items():  # a failed input never reaches the rest
                    if stage not in passed:
                        bar.total -= 1
                        bar.refresh()

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()


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
