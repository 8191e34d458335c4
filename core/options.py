"""One options object per component: a frozen dataclass whose fields are the options, each with
its default, a sentence of documentation and, for numbers, its range.

A component declares it as ``Options`` (``option_names`` follow from its fields); the engine
builds it from the pipeline's mapping, rejecting unknown keys, wrong types and values out of
range with a message naming the component and the option, and the component reads typed values
from ``self.settings``. ``runpipe schema NAME`` prints the same declaration as JSON Schema::

    @dataclass(frozen=True)
    class Options:
        threshold: float = option(0.55, "cosine similarity above which two voices are one", minimum=-1, maximum=1)
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Mapping

from runpipe.errors import PipelineConfigError

_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string"}
_ARTICLES = {"boolean": "true or false", "integer": "an integer", "number": "a number", "string": "a string", "null": "null"}


def option(default: Any, doc: str, *, minimum: float | None = None, maximum: float | None = None) -> Any:
    """A documented option field with its default and, for numbers, the range it must lie in."""
    return dataclasses.field(default=default, metadata={"doc": doc, "minimum": minimum, "maximum": maximum})


def _allowed_types(options_class: type, name: str) -> tuple[type, ...]:
    hint = typing.get_type_hints(options_class)[name]
    args = typing.get_args(hint)
    return tuple(a for a in args if a in _JSON_TYPES or a is type(None)) if args else (hint,)


def _accepts(types: tuple[type, ...], value: Any) -> bool:
    if value is None:
        return type(None) in types
    if isinstance(value, bool):  # bool is an int to Python, never to a pipeline
        return bool in types
    if isinstance(value, int) and float in types:
        return True
    return any(t is not type(None) and isinstance(value, t) for t in types)


def parse_options(options_class: type, values: Mapping[str, Any], owner: str) -> Any:
    """``options_class`` built from ``values``: unknown keys, wrong types and values out of range
    are :class:`PipelineConfigError` naming ``owner`` and the option."""
    fields = {f.name: f for f in dataclasses.fields(options_class)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise PipelineConfigError(
            f"{owner}: unknown option(s) {', '.join(unknown)}; known options: {', '.join(sorted(fields)) or 'none'}"
        )
    for name, value in values.items():
        types = _allowed_types(options_class, name)
        if not _accepts(types, value):
            expected = " or ".join(_ARTICLES[_JSON_TYPES.get(t, "null")] for t in types)
            raise PipelineConfigError(f"{owner}: option {name} must be {expected}, got {value!r}")
        meta = fields[name].metadata
        low, high = meta.get("minimum"), meta.get("maximum")
        if value is not None and ((low is not None and value < low) or (high is not None and value > high)):
            bounds = f"between {low:g} and {high:g}" if low is not None and high is not None else (
                f"at least {low:g}" if low is not None else f"at most {high:g}")
            raise PipelineConfigError(f"{owner}: option {name} must be {bounds}, got {value!r}")
    converted = {k: float(v) if float in _allowed_types(options_class, k) and isinstance(v, int) and not isinstance(v, bool) else v
                 for k, v in values.items()}
    return options_class(**converted)


def options_schema(options_class: type, title: str) -> dict[str, Any]:
    """The JSON Schema of ``options_class``: types, defaults, documentation, ranges."""
    properties = {}
    for f in dataclasses.fields(options_class):
        types = _allowed_types(options_class, f.name)
        names = [_JSON_TYPES.get(t, "null") for t in types]
        entry: dict[str, Any] = {"type": names[0] if len(names) == 1 else names, "default": f.default}
        if f.metadata.get("doc"):
            entry["description"] = f.metadata["doc"]
        for bound in ("minimum", "maximum"):
            if f.metadata.get(bound) is not None:
                entry[bound] = f.metadata[bound]
        properties[f.name] = entry
    return {"title": title, "type": "object", "additionalProperties": False, "properties": properties}
