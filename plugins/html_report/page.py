"""Shared helpers: the package-data templates and safe ways to put values into them."""

from __future__ import annotations

import functools
import html
import json
import re
from importlib import resources
from typing import Any, Mapping

from runpipe.timecode import format_clock

_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


@functools.cache
def template(name: str) -> str:
    """The text of a template file shipped next to this module (report.html, report.css, ...)."""
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def fill(text: str, values: Mapping[str, str]) -> str:
    """Replace every ``{{name}}`` in one pass, so filled-in values are never scanned again."""
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], text)


def esc(value: Any) -> str:
    """Text or attribute value, HTML-escaped (quotes included)."""
    return html.escape("" if value is None else str(value), quote=True)


def script_json(value: Any) -> str:
    """JSON safe to place inside ``<script type="application/json">``: no ``<``, ``>`` or ``&``."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def clock(seconds: float | None, *, long: bool = False) -> str:
    """``MM:SS`` (``H:MM:SS`` when ``long`` or past an hour); an empty string for unknown times."""
    return "" if seconds is None else format_clock(seconds, always_hours=long)


def seconds_attr(seconds: float) -> str:
    """A compact number for data attributes: ``12.5``, ``3``."""
    return f"{seconds:.3f}".rstrip("0").rstrip(".")
