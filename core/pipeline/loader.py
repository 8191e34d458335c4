"""Pipeline files: safe YAML -> JSON Schema check -> :class:`Pipeline`.

Every error names the file, the path inside it (``stages.analyze.tasks[1].schema``), what was
expected, and the line where the YAML says it.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

import jsonschema
import yaml

from runpipe.errors import PipelineConfigError
from runpipe.paths import builtin_pipelines_dir, builtin_schemas_dir
from runpipe.pipeline.spec import Pipeline


@lru_cache(maxsize=1)
def pipeline_schema() -> dict[str, Any]:
    return json.loads((builtin_schemas_dir() / "pipeline.schema.json").read_text(encoding="utf-8"))


def format_path(path: Iterable[Any]) -> str:
    """``["stages", "analyze", "tasks", 1, "schema"]`` -> ``stages.analyze.tasks[1].schema``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _line_of(root: yaml.Node | None, path: Iterable[Any]) -> int | None:
    """1-based line of the YAML node at ``path`` (or of its nearest existing parent)."""
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for part in path:
        child = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == part:
                    child = value
                    line = key.start_mark.line + 1
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line


def _explain(error: jsonschema.ValidationError) -> str:
    """Say what was expected in words rather than in schema jargon."""
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, dict) else []
        return f"unknown key(s) {', '.join(map(repr, extra))}; allowed here: {', '.join(allowed)}"
    if error.validator == "required":
        return error.message.replace("is a required property", "is required here")
    if error.validator == "oneOf":
        return f"{error.instance!r} is not valid here: {error.schema.get('description', 'see the pipeline schema')}"
    if error.validator in ("enum", "type", "pattern", "minimum", "maximum", "minItems", "minLength", "exclusiveMinimum"):
        hint = error.schema.get("description")
        return error.message + (f" ({hint})" if hint else "")
    return error.message


def validate_data(data: Any, *, source: str, root: yaml.Node | None = None) -> None:
    """Raise :class:`PipelineConfigError` listing every schema violation in ``data``."""
    validator = jsonschema.Draft202012Validator(pipeline_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if not errors:
        return
    lines = []
    for error in errors:
        path = list(error.absolute_path)
        line_path = path
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
            line_path = path + extra[:1]  # point at the unknown key itself
        line = _line_of(root, line_path)
        where = f"{source}:{line}" if line else source
        lines.append(f"{where}: {format_path(path)}: {_explain(error)}")
    raise PipelineConfigError("invalid pipeline\n  " + "\n  ".join(lines))


def resolve_pipeline_path(location: str | Path) -> Path:
    """A pipeline path as given, or the name of a built-in pipeline (``podcast``)."""
    path = Path(location)
    if path.exists():
        return path
    builtin = builtin_pipelines_dir() / f"{path.stem}.yaml"
    if path.parent == Path(".") and builtin.exists():
        return builtin
    raise PipelineConfigError(f"{location}: no such pipeline file (built-in pipelines: {', '.join(builtin_names())})")


def builtin_names() -> list[str]:
    return sorted(p.stem for p in builtin_pipelines_dir().glob("*.yaml"))


def load_pipeline(location: str | Path) -> Pipeline:
    path = resolve_pipeline_path(location)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PipelineConfigError(f"{path}: cannot read pipeline: {exc}") from exc
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise PipelineConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(data, Mapping):
        raise PipelineConfigError(f"{path}: a pipeline is a YAML mapping with 'name' and 'stages'")
    validate_data(data, source=str(path), root=root)
    return Pipeline.from_dict(data, source=path.resolve())


def pipeline_from_dict(data: Mapping[str, Any], *, base_dir: Path | None = None) -> Pipeline:
    """Validate and build a pipeline given as a dict (for embedding tools)."""
    validate_data(data, source="<pipeline dict>")
    return Pipeline.from_dict(data, source=(base_dir / "<pipeline>") if base_dir else None)
