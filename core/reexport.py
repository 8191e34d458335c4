"""``runpipe export``: re-render a stored JSON result with new names or settings."""

from __future__ import annotations

import dataclasses
import json
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import jsonschema

from runpipe.errors import PipelineConfigError
from runpipe.model import Artifact, Document, Speaker
from runpipe.paths import builtin_schemas_dir
from runpipe.pipeline.loader import clip, format_path
from runpipe.pipeline.spec import AnalyzeSpec, ExportSpec, NamedOptions, Pipeline
from runpipe.serialize import RESULT_FORMAT, document_from_dict

log = logging.getLogger("runpipe.reexport")


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


@lru_cache(maxsize=1)
def _result_validator() -> jsonschema.Draft202012Validator:
    schema = json.loads((builtin_schemas_dir() / "result.schema.json").read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


def read_result(path: Path) -> Document:
    """The Document in a JSON result, checked against the result format first
    (``schemas/result.schema.json``), so that a damaged or hand-edited file fails here with
    the place and the reason instead of somewhere inside an exporter."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise PipelineConfigError(f"{path}: not a runpipe JSON result (cannot read it as JSON: {exc})") from None
    if not isinstance(data, dict) or data.get("format") != RESULT_FORMAT:
        found = f"format {data.get('format')!r}" if isinstance(data, dict) else f"a JSON {type(data).__name__}"
        raise PipelineConfigError(f"{path}: not a runpipe JSON result ({found}; expected an object with format {RESULT_FORMAT!r})")
    error = jsonschema.exceptions.best_match(_result_validator().iter_errors(data))
    if error is not None:
        where = format_path(error.absolute_path)
        raise PipelineConfigError(f"{path}: not a valid runpipe result: {where}: {clip(error.message, 200)}")
    return document_from_dict(data)


def reexport(engine: Any, result_path: Path, formats: list[str], renames: Iterable[str], option_pairs: Iterable[str], output_dir: Path | None) -> list[Artifact]:
    """Render the result at ``result_path`` again, through the export hook a run uses (so a
    plugin that replaces, wraps or watches the export stage is honoured here too)."""
    from runpipe.run import RunContext
    from runpipe.runner import run_stage

    document = read_result(result_path)
    audio = document.audio.path
    if "html" in formats and audio is not None and not audio.is_file():
        log.warning("%s: the normalized audio %s is gone (cache cleared?), so the HTML report has no player; "
                    "run the pipeline on the input again to bring it back", result_path, audio)
    document = rename_speakers(document, parse_renames(renames))
    options = parse_options(option_pairs)
    folder = output_dir or result_path.parent
    export = ExportSpec(formats=tuple(NamedOptions(fmt, options.get(fmt, {})) for fmt in formats), output_dir=str(folder))
    pipeline = Pipeline(name="export", analyze=AnalyzeSpec(tasks=()), export=export)
    for fmt in export.formats:
        engine.component("exporters", fmt.name, fmt.options)  # unknown formats and options fail before anything is written
    run = RunContext(engine, pipeline, (), folder, engine.store, "export",
                     output_stems={document.source.uri: result_path.name.removesuffix(".json")})
    return list(run_stage(engine, run, "export", document.source, lambda: engine.pm.hook.runpipe_export(document=document, run=run)))
