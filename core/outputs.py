"""Output file names from the pipeline's template, kept inside the output folder, written
atomically."""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

from runpipe.atomic import write_atomic
from runpipe.errors import OutputError
from runpipe.model import Artifact, Document, RunResult
from runpipe.run import RunContext

_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]+')
_FIELDS = re.compile(r"\{(\w+)\}")
TEMPLATE_FIELDS = ("stem", "name", "task", "pipeline", "hash")


def safe_component(text: str) -> str:
    """One file-name component: no separators, control or reserved characters, no leading dots."""
    text = unicodedata.normalize("NFC", text)
    text = _UNSAFE.sub("_", text).strip().lstrip(".")
    return text[:180] or "_"


def output_stem(template: str, document: Document, run: RunContext) -> str:
    unknown = sorted(set(_FIELDS.findall(template)) - set(TEMPLATE_FIELDS))
    if unknown:
        raise OutputError(f"output template {template!r}: unknown field(s) {', '.join(unknown)}; known: {', '.join(TEMPLATE_FIELDS)}")
    values = {
        "stem": document.source.stem,
        "name": document.source.name,
        "task": document.task,
        "pipeline": run.pipeline.name,
        "hash": document.audio.content_hash[:12],
    }
    # Field values are sanitized one by one, so an input called "../x" cannot climb out;
    # the template's own slashes may make sub-folders, checked below.
    stem = _FIELDS.sub(lambda m: safe_component(str(values[m.group(1)])), template)
    if len(run.tasks) > 1 and "{task}" not in template:
        stem = f"{stem}.{safe_component(document.task)}"
    return stem


def output_path(output_dir: Path, stem: str, suffix: str) -> Path:
    root = output_dir.resolve()
    candidate = (root / f"{stem}{suffix}").resolve()
    if candidate != root and root not in candidate.parents:
        raise OutputError(f"output name {stem + suffix!r} escapes the output folder {output_dir}")
    return candidate


def check_outputs(run: RunContext) -> None:
    """Raise :class:`OutputError` now if the export stage could not write where the pipeline asks
    (an unknown template field, a template that climbs out of the output folder, a folder that
    cannot be created or written), so that no analysis is paid for whose result cannot be kept.

    Creates nothing. Field values are sanitized one by one (see :func:`output_stem`), so whether
    a name escapes depends only on the template's own text.
    """
    template = run.pipeline.export.template
    unknown = sorted(set(_FIELDS.findall(template)) - set(TEMPLATE_FIELDS))
    if unknown:
        raise OutputError(f"output template {template!r}: unknown field(s) {', '.join(unknown)}; known: {', '.join(TEMPLATE_FIELDS)}")
    folder = output_path(run.output_dir, _FIELDS.sub("x", template), ".x").parent
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"cannot write outputs to {run.output_dir}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write outputs to {run.output_dir}: {existing} is not writable")


def write_output(path: Path, content: str | bytes, fmt: str) -> Artifact:
    try:
        size = write_atomic(path, content)
    except OSError as exc:
        raise OutputError(f"cannot write {fmt} output {path}: {exc.strerror or exc}") from exc
    return Artifact(fmt, path, size)


def write_index(run: RunContext, result: RunResult) -> list[Artifact]:
    """Batch pages from exporters that offer one (e.g. the HTML report's index.html)."""
    written = []
    for fmt in run.pipeline.export.formats:
        exporter = run.exporter(fmt)
        root = run.output_dir.resolve()
        links = {
            r.item.uri: next((a.path.relative_to(root).as_posix() for a in r.artifacts if a.format == fmt.name), "")
            for r in result.inputs
        }
        page = exporter.render_index(result, links)
        if page is not None:
            written.append(write_output(output_path(run.output_dir, "index", exporter.suffix), page, fmt.name))
    return written
