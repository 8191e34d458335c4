"""Output file names from the pipeline's template, kept inside the output folder, unique within
a batch, written atomically."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import unicodedata
from pathlib import Path, PurePosixPath
from typing import Iterable, Mapping

from runpipe.atomic import write_atomic
from runpipe.errors import OutputError, RunpipeError
from runpipe.interfaces import Exporter
from runpipe.model import Artifact, Document, InputResult, MediaItem, RunResult
from runpipe.run import RunContext

_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]+')
_FIELDS = re.compile(r"\{(\w+)\}")
TEMPLATE_FIELDS = ("stem", "name", "task", "pipeline", "hash")
#: Bytes a name component may take: file systems allow 255, and the atomic writer's temporary
#: name adds about 16 (".NAME.xxxxxxxx.part"), a format suffix and a task suffix a few more.
MAX_COMPONENT_BYTES = 180
INDEX_STEM = "index"  # the batch page of exporters that offer one (index.html)


def _short_hash(text: str, length: int = 8) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:length]


def safe_component(text: str) -> str:
    """One file-name component: no separators, control or reserved characters, no leading dots.

    A name too long for the file system keeps its beginning and ends in a hash of the whole
    name, so two long names that differ only at the end stay apart.
    """
    clean = _UNSAFE.sub("_", unicodedata.normalize("NFC", text)).strip().lstrip(".")
    encoded = clean.encode("utf-8", "surrogateescape")
    if len(encoded) > MAX_COMPONENT_BYTES:
        head = encoded[: MAX_COMPONENT_BYTES - 9].decode("utf-8", "ignore").rstrip()
        clean = f"{head}~{_short_hash(text)}"
    return clean or "_"


def template_problem(template: str) -> str | None:
    """Why ``template`` cannot name outputs, or None. The same rules hold for ``runpipe validate``
    and the run: only the bare fields of :data:`TEMPLATE_FIELDS`, balanced braces, and a
    relative path that stays inside the output folder."""
    unknown = sorted(set(_FIELDS.findall(template)) - set(TEMPLATE_FIELDS))
    if unknown:
        return f"unknown field(s) {', '.join(unknown)}; known: {', '.join(TEMPLATE_FIELDS)}"
    literal = _FIELDS.sub("x", template)
    if "{" in literal or "}" in literal:
        return f"a brace that is not part of a field ({{stem}}, {{name}}, ...); fields take no attributes, indexes or formats"
    parts = PurePosixPath(literal.replace("\\", "/"))
    if parts.is_absolute() or re.match(r"^[A-Za-z]:", literal):
        return "an absolute path; a template names files inside the output folder"
    if ".." in parts.parts:
        return "'..' would put outputs outside the output folder"
    return None


def _render(template: str, item: MediaItem, task: str, pipeline: str, content_hash: str) -> str:
    values = {"stem": item.stem, "name": item.name, "task": task, "pipeline": pipeline, "hash": content_hash[:12]}
    # Field values are sanitized one by one, so an input called "../x" cannot climb out;
    # the template's own slashes may make sub-folders.
    return _FIELDS.sub(lambda m: safe_component(str(values[m.group(1)])), template)


def output_stem(template: str, document: Document, run: RunContext) -> str:
    fixed = run.output_stems.get(document.source.uri)
    if fixed is not None:
        return fixed
    problem = template_problem(template)
    if problem:
        raise OutputError(f"output template {template!r}: {problem}")
    stem = _render(template, document.source, document.task, run.pipeline.name, document.audio.content_hash)
    stem += run.output_names.get(document.source.uri, "")
    if len(run.tasks) > 1 and "{task}" not in template:
        stem = f"{stem}.{safe_component(document.task)}"
    return stem


def _offers_index(exporter: type[Exporter]) -> bool:
    return exporter.render_index is not Exporter.render_index


def plan_output_names(run: RunContext, items: Iterable[MediaItem]) -> dict[str, str]:
    """Find inputs whose outputs would land on the same files, before any work is done, and give
    each of them a qualifier that :func:`output_stem` appends: its own suffix (``a.wav``) when that
    tells it apart, else its suffix and a hash of its location (``a.mp3-1f2e3d4c``). Returns input
    uri -> qualifier, only for inputs that need one; each renamed input gets a run message.

    Names are compared as a case-insensitive file system would see them, so the outputs stay apart
    on any disk. Deterministic: the same batch gives the same names on every rerun. ``{hash}``
    (the content's hash, not known until normalize) is stood in for by the location's hash.
    """
    template = run.pipeline.export.template
    if template_problem(template):
        return {}  # check_outputs fails every input with the reason
    task = run.tasks[0].name if run.tasks else ""
    offers_index = any(_offers_index(type(run.exporter(fmt))) for fmt in run.pipeline.export.formats)
    reserved = {INDEX_STEM} if offers_index else set()

    def key(stem: str) -> str:
        return unicodedata.normalize("NFC", stem).casefold()

    items = list(items)
    stems = {item.uri: _render(template, item, task, run.pipeline.name, _short_hash(item.uri, 12)) for item in items}
    groups: dict[str, list[MediaItem]] = {}
    for item in items:
        groups.setdefault(key(stems[item.uri]), []).append(item)
    taken = {k for k, group in groups.items() if len(group) == 1 and k not in reserved} | reserved
    qualifiers: dict[str, str] = {}
    for name_key, group in groups.items():
        if len(group) == 1 and name_key not in reserved:
            continue
        suffixes = ["." + safe_component(Path(item.name).suffix[1:]) if Path(item.name).suffix else "" for item in group]
        for item, suffix in zip(group, suffixes):
            unique_suffix = suffix and "{name}" not in template and suffixes.count(suffix) == 1
            for qualifier in ([suffix] if unique_suffix else []) + [f"{suffix}-{_short_hash(item.uri)}", f"{suffix}-{_short_hash(item.uri, 16)}"]:
                if key(stems[item.uri] + qualifier) not in taken:
                    break
            else:  # pragma: no cover - a 64-bit hash collision
                raise OutputError(f"{item.name}: cannot find an output name that no other input of this batch uses")
            taken.add(key(stems[item.uri] + qualifier))
            qualifiers[item.uri] = qualifier
            others = len(group) - 1
            why = f"{others} other input{'s' if others != 1 else ''}" if others else "the batch index page"
            if others and name_key in reserved:
                why += " and the batch index page"
            run.message(f"output name {stems[item.uri]!r} is also that of {why}; written as {stems[item.uri] + qualifier!r}", item)
    return qualifiers


def output_path(output_dir: Path, stem: str, suffix: str) -> Path:
    root = output_dir.resolve()
    candidate = (root / f"{stem}{suffix}").resolve()
    if candidate != root and root not in candidate.parents:
        raise OutputError(f"output name {stem + suffix!r} escapes the output folder {output_dir}")
    return candidate


def check_outputs(run: RunContext) -> None:
    """Raise :class:`OutputError` now if the export stage could not write where the pipeline asks
    (a template :func:`template_problem` refuses, a template that climbs out of the output folder, a folder that
    cannot be created or written), so that no analysis is paid for whose result cannot be kept.

    Creates nothing. Field values are sanitized one by one (see :func:`output_stem`), so whether
    a name escapes depends only on the template's own text.
    """
    template = run.pipeline.export.template
    problem = template_problem(template)
    if problem:
        raise OutputError(f"output template {template!r}: {problem}")
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


def write_outputs(rendered: Iterable[tuple[str, Path, str | bytes]]) -> list[Artifact]:
    """Write ``(format, path, content)`` all or nothing: when one cannot be written (a full
    disk), the ones already written for it are removed, so a failed input leaves no partial set."""
    written: list[Artifact] = []
    try:
        for fmt, path, content in rendered:
            written.append(write_output(path, content, fmt))
    except BaseException:
        for artifact in written:
            artifact.path.unlink(missing_ok=True)
        raise
    return written


def _earlier_results(run: RunContext, result: RunResult) -> tuple[InputResult, ...]:
    """Inputs of earlier runs whose JSON results are still in the output folder, so that a rerun
    on some inputs keeps the others on the batch page (an input without a JSON output cannot be
    told from a stranger's file, and is left out)."""
    from runpipe.reexport import read_result  # reexport writes through this module

    root = run.output_dir.resolve()
    seen = {r.item.uri for r in result.inputs}
    suffixes = {fmt.name: run.exporter(fmt).suffix for fmt in run.pipeline.export.formats}
    earlier: dict[str, InputResult] = {}
    for path in sorted(root.rglob("*.json")) if root.is_dir() else ():
        try:
            document = read_result(path)
        except RunpipeError:
            continue  # not a runpipe result
        uri = document.source.uri
        if uri in seen:
            continue
        artifacts = tuple(
            Artifact(fmt, sibling, sibling.stat().st_size)
            for fmt, suffix in suffixes.items() if (sibling := path.with_suffix(suffix)).is_file()
        )
        before = earlier.get(uri, InputResult(document.source, "done"))
        earlier[uri] = dataclasses.replace(before, documents=before.documents + (document,), artifacts=before.artifacts + artifacts)
    return tuple(earlier.values())


def write_index(run: RunContext, result: RunResult) -> list[Artifact]:
    """Batch pages from exporters that offer one (e.g. the HTML report's index.html), listing this
    run's inputs and those of earlier runs into the same folder."""
    written = []
    result = dataclasses.replace(result, inputs=result.inputs + _earlier_results(run, result))
    for fmt in run.pipeline.export.formats:
        exporter = run.exporter(fmt)
        root = run.output_dir.resolve()
        links = {
            r.item.uri: next((a.path.relative_to(root).as_posix() for a in r.artifacts if a.format == fmt.name), "")
            for r in result.inputs
        }
        page = exporter.render_index(result, links)
        if page is not None:
            written.append(write_output(output_path(run.output_dir, INDEX_STEM, exporter.suffix), page, fmt.name))
    return written
