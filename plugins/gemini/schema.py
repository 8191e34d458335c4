"""Converting a task's JSON Schema into the subset Gemini's ``responseJsonSchema`` takes.

The SDK passes ``response_json_schema`` through untouched (``t_json_schema`` is the identity), so
the conversion is ours. Gemini documents the keywords it supports for structured output; others
(``$schema``, ``examples``, ``default``, ``pattern``, ...) are dropped here rather than risking a 400
or being silently ignored. The full schema still validates the answer locally with jsonschema, so
nothing is lost: a dropped constraint is enforced on our side and a violation triggers a repair.
"""

from __future__ import annotations

from typing import Any, Mapping

#: Keywords Gemini's structured output accepts in responseJsonSchema.
SUPPORTED_KEYWORDS = frozenset({
    "$id", "$defs", "$ref", "$anchor", "type", "format", "title", "description", "enum", "items",
    "prefixItems", "minItems", "maxItems", "minimum", "maximum", "anyOf", "oneOf", "properties",
    "additionalProperties", "required", "propertyOrdering",
})
_SCHEMA_MAPS = ("properties", "$defs")  # name -> schema
_SCHEMA_LISTS = ("prefixItems", "anyOf", "oneOf")  # [schema, ...]
_SCHEMA_VALUES = ("items", "additionalProperties")  # schema (or a boolean for additionalProperties)


def response_json_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``schema`` keeping only what Gemini accepts, recursively.

    ``const`` becomes a one-value ``enum``, which Gemini does support.
    """
    converted: dict[str, Any] = {}
    for keyword, value in schema.items():
        if keyword == "const":
            converted["enum"] = [value]
        elif keyword not in SUPPORTED_KEYWORDS:
            continue
        elif keyword in _SCHEMA_MAPS:
            converted[keyword] = {name: response_json_schema(sub) for name, sub in value.items()}
        elif keyword in _SCHEMA_LISTS:
            converted[keyword] = [response_json_schema(sub) for sub in value]
        elif keyword in _SCHEMA_VALUES and isinstance(value, Mapping):
            converted[keyword] = response_json_schema(value)
        else:
            converted[keyword] = value
    return converted
