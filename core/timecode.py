"""Clock strings <-> seconds: MM:SS, H:MM:SS, with optional fractions, and time ranges."""

from __future__ import annotations

import re
from typing import Any, Mapping

from runpipe.model import TimeRange

_CLOCK = re.compile(r"^\s*(?:(\d+):)?(\d{1,3}):(\d{1,2}(?:[.,]\d+)?)\s*$")
_SECONDS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*s?\s*$")


def parse_clock(text: str) -> float:
    """Parse ``MM:SS``, ``H:MM:SS``, ``MM:SS.mmm`` or plain seconds (``"12.5"``) into seconds.

    Raises ValueError with the offending text when it is none of those.
    """
    match = _CLOCK.match(str(text))
    if match:
        hours, minutes, seconds = match.groups()
        return int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds.replace(",", "."))
    match = _SECONDS.match(str(text))
    if match:
        return float(match.group(1))
    raise ValueError(f"not a timestamp: {text!r} (expected MM:SS or H:MM:SS)")


def format_clock(seconds: float, *, always_hours: bool = False) -> str:
    """Seconds -> ``MM:SS`` (or ``H:MM:SS`` past an hour), the form Gemini's prompts use."""
    total = max(0, int(round(seconds)))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours or always_hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes:02d}:{secs:02d}"


def parse_range(text: str) -> TimeRange:
    """Parse ``"02:30-03:29"`` (or ``"02:30-"`` for "to the end") into a :class:`TimeRange`."""
    start_text, sep, end_text = str(text).partition("-")
    if not sep:
        raise ValueError(f"not a time range: {text!r} (expected START-END such as 02:30-03:29)")
    start = parse_clock(start_text)
    end = parse_clock(end_text) if end_text.strip() else None
    if end is not None and end <= start:
        raise ValueError(f"time range {text!r} ends before it starts")
    return TimeRange(start, end)


def item_seconds(item: Mapping[str, Any], number_key: str, clock_key: str) -> float | None:
    """Seconds from an answer item: a number under ``number_key`` (what the offline backend and
    stitching give), else a MM:SS / H:MM:SS string under ``clock_key``; None when neither reads."""
    value = item.get(number_key)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = item.get(clock_key)
    if isinstance(text, str) and text.strip():
        try:
            return parse_clock(text)
        except ValueError:
            return None
    return None
