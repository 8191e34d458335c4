"""The batch index page: one row per input with its status and a link to its report."""

from __future__ import annotations

from typing import Mapping
from urllib.parse import quote

from runpipe.model import InputResult, RunResult

from .page import clock, esc, fill, template
from .report import lanes


def render(run: RunResult, links: Mapping[str, str], *, title: str | None, version: str) -> str:
    done = sum(r.status == "done" for r in run.inputs)
    failed = len(run.failed)
    summary = f"{len(run.inputs)} input{'s' if len(run.inputs) != 1 else ''} · {done} done · {failed} failed"
    skipped = len(run.inputs) - done - failed
    if skipped:
        summary += f" · {skipped} skipped"
    rows = "\n".join(_row(result, links.get(result.item.uri)) for result in run.inputs)
    return fill(
        template("index.html"),
        {
            "title": esc(title or f"runpipe run: {run.pipeline}"),
            "meta": esc(summary + (f" · run {run.run_id}" if run.run_id else "")),
            "rows": rows,
            "version": esc(version),
            "css": template("report.css"),
        },
    )


def _row(result: InputResult, link: str | None) -> str:
    name = esc(result.item.name)
    input_cell = f'<a href="{esc(quote(link))}">{name}</a>' if link else name
    status = f'<span class="status status-{esc(result.status)}">{esc(result.status)}</span>'
    if result.status == "failed":
        stage = f"{result.failed_stage} failed: " if result.failed_stage else ""
        status += f'<p class="error">{esc(stage + (result.error or "unknown error"))}</p>'
    documents = result.documents
    duration = next((d.audio.duration for d in documents if d.audio.duration), None)
    speakers = list(dict.fromkeys(lane.name for d in documents for lane in lanes(d)))
    segments = sum(len(d.segments) for d in documents)
    report_cell = f'<a href="{esc(quote(link))}">Open report</a>' if link else '<span class="muted">none</span>'
    cells = [
        ("Status", "status", status),
        ("Duration", "duration", esc(clock(duration)) or "–"),
        ("Speakers", "speakers", esc(", ".join(speakers)) or "–"),
        ("Segments", "segments", str(segments or "–")),
        ("Report", "report", report_cell),
    ]
    tds = "".join(f'<td class="col-{css}" data-label="{label}"><div>{value}</div></td>' for label, css, value in cells)
    return f'<tr class="input-row" data-status="{esc(result.status)}"><th scope="row">{input_cell}</th>{tds}</tr>'

