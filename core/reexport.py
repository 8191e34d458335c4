"""``runpipe export``: re-render a stored JSON result with new names or settings."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Iterable

from runpipe.errors import PipelineConfigError
from runpipe.model import Artifact, Document, Speaker
from runpipe.outputs import output_path, write_output
from runpipe.serialize import document_from_dict


def parse_renames(pairs: Iterable[str]) -> dict[str, str]:
    renames = {}
    for pair in pairs:
        label, sep, name = pair.partition("=")
        if not sep or not label.strip() or not name.strip():
            raise PipelineConfigError(f"--rename {pair!r}: expected LABEL=NAME, e.g. 'Speaker 1=Ada'")
        renames[label.strip()] = name.strip()
    return renames


def rename_speakers(document: Document, renames: dict[str, str]) -> Document:
    known = {s.label for s in document.speakers} | {s.display for s in document.speakers}
    unknown = sorted(set(renames) - known)
    if unknown:
        raise PipelineConfigError(f"--rename: no speaker {', '.join(map(repr, unknown))} in this result; speakers: {', '.join(sorted(known))}")
    speakers = tuple(
        Speaker(s.label, renames.get(s.label, renames.get(s.display, s.name))) for s in document.speakers
    )
    return dataclasses.replace(document, speakers=speakers)


def parse_options(pairs: Iterable[str]) -> dict[str, dict[str, Any]]:
    options: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        fmt, dot, name = key.partition(".")
        if not sep or not dot:
            raise PipelineConfigError(f"--option {pair!r}: expected FORMAT.KEY=VALUE, e.g. srt.max_line_chars=32")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        options.setdefault(fmt, {})[name] = value
    return options


def reexport(engine: Any, result_path: Path, formats: list[str], renames: Iterable[str], option_pairs: Iterable[str], output_dir: Path | None) -> list[Artifact]:
    try:
        document = document_from_dict(json.loads(result_path.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError) as exc:
        raise PipelineConfigError(f"{result_path}: not a runpipe JSON result ({exc})") from None
    document = rename_speakers(document, parse_renames(renames))
    options = parse_options(option_pairs)
    folder = output_dir or result_path.parent
    stem = result_path.name.removesuffix(".json")
    rendered = []
    for fmt in formats:
        exporter = engine.component("exporters", fmt, options.get(fmt, {}))
        rendered.append((fmt, output_path(folder, stem, exporter.suffix), exporter.render(document)))
    return [write_output(path, content, fmt) for fmt, path, content in rendered]
