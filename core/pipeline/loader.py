"""Pipeline files: safe YAML -> JSON Schema check -> :class:`Pipeline`.

Every error names the file, the path inside it (``stages.analyze.tasks[1].schema``), what was
expected, and the line where the YAML says it.
"""

from __future__ import annotations

import json
import reprlib
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

import jsonschema
import yaml

from runpipe.errors import PipelineConfigError
from runpipe.outputs import template_problem
from runpipe.paths import builtin_pipelines_dir, builtin_schemas_dir
from runpipe.pipeline.spec import Pipeline

#: How big a pipeline may get once its aliases are expanded, in nodes plus characters of text.
#: Real pipelines (long prompts included) stay far below; an alias bomb (a list of nine aliases
#: of a list of nine aliases of ...) passes it after a few hundred bytes of YAML.
MAX_EXPANDED_SIZE = 1_000_000
#: Characters of a value an error message quotes; the rest is elided.
MAX_QUOTED_CHARS = 120


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


def clip(text: str, limit: int = MAX_QUOTED_CHARS) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _quote(value: Any) -> str:
    """``repr(value)``, cut short without building the whole text of a huge value."""
    short = reprlib.Repr()
    short.maxstring = short.maxother = MAX_QUOTED_CHARS
    return clip(short.repr(value))


def _check_expansion(root: yaml.Node | None, source: str) -> None:
    """Refuse a document whose aliases expand past :data:`MAX_EXPANDED_SIZE`, or refer to
    themselves, before anything (schema check, error message) walks the expanded value."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise PipelineConfigError(f"{source}:{node.start_mark.line + 1}: an alias refers to the value that contains it")
        open_nodes.add(key)
        if isinstance(node, yaml.ScalarNode):
            total = 1 + len(node.value)
        else:
            children = node.value if isinstance(node, yaml.SequenceNode) else [n for pair in node.value for n in pair]
            total = 1
            for child in children:
                total += size(child)
                if total > MAX_EXPANDED_SIZE:
                    raise PipelineConfigError(
                        f"{source}:{node.start_mark.line + 1}: the YAML aliases here expand to more than "
                        f"{MAX_EXPANDED_SIZE:,} values and characters; a pipeline is never that big (an alias bomb?)"
                    )
        open_nodes.discard(key)
        sizes[key] = total
        return total

    if root is not None:
        size(root)


def _explain(error: jsonschema.ValidationError) -> str:
    """Say what was expected in words rather than in schema jargon."""
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, dict) else []
        return f"unknown key(s) {', '.join(map(repr, extra))}; allowed here: {', '.join(allowed)}"
    if error.validator == "required":
        return error.message.replace("is a required property", "is required here")
    if error.validator == "oneOf":
        return f"{_quote(error.instance)} is not valid here: {error.schema.get('description', 'see the pipeline schema')}"
    if error.validator in ("enum", "type", "pattern", "minimum", "maximum", "minItems", "minLength", "exclusiveMinimum"):
        hint = error.schema.get("description")
        return clip(error.message, 3 * MAX_QUOTED_CHARS) + (f" ({hint})" if hint else "")
    return clip(error.message, 3 * MAX_QUOTED_CHARS)


def validate_data(data: Any, *, source: str, root: yaml.Node | None = None) -> None:
    """Raise :class:`PipelineConfigError` listing every schema violation in ``data``."""
    validator = jsonschema.Draft202012Validator(pipeline_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
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
    if not errors:  # the run refuses such a template; validate says so too
        template = data.get("stages", {}).get("export", {}).get("template", "{stem}")
        problem = template_problem(template)
        if problem is None:
            return
        path = ["stages", "export", "template"]
        line = _line_of(root, path)
        lines.append(f"{f'{source}:{line}' if line else source}: {format_path(path)}: {_quote(template)}: {problem}")
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
        _check_expansion(root, str(path))
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
