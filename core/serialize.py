"""JSON forms of the stage values. The JSON export of a :class:`Document` is the source of
truth: ``runpipe export RESULT.json`` rebuilds the Document from it without the audio."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping, Sequence

from runpipe.answer import parse_fields
from runpipe.model import Analysis, AudioFile, AudioInfo, Document, MediaItem, ModelUse, Segment, Speaker, TimeRange, Usage, Word

RESULT_FORMAT = "runpipe.result/1"


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def usage_from_dict(data: Mapping[str, Any] | None) -> Usage:
    return Usage(**{k: v for k, v in (data or {}).items() if k in Usage.__dataclass_fields__})


def _range_to_list(window: TimeRange) -> list[float | None]:
    return [window.start, window.end]


def _range_from_list(pair: Sequence[float | None]) -> TimeRange:
    start, end = pair
    return TimeRange(start, end)


def models_from_list(data: Any) -> tuple[ModelUse, ...]:
    return tuple(ModelUse(m["role"], m["model"], usage_from_dict(m.get("usage"))) for m in data or ())


def analysis_to_dict(analysis: Analysis) -> dict[str, Any]:
    return {**_plain(analysis), "windows": [_range_to_list(w) for w in analysis.windows]}


def analysis_from_dict(data: Mapping[str, Any]) -> Analysis:
    return Analysis(
        task=data["task"],
        data=data["data"],
        backend=data["backend"],
        model=data["model"],
        usage=usage_from_dict(data.get("usage")),
        offset=data.get("offset", 0.0),
        provenance=data.get("provenance", {}),
        estimated_fields=tuple(data.get("estimated_fields", ())),
        models=models_from_list(data.get("models")),
        notes=tuple(data.get("notes", ())),
        windows=tuple(_range_from_list(w) for w in data.get("windows", ())),
    )


def segment_to_dict(segment: Segment) -> dict[str, Any]:
    data = _plain(segment)
    if not segment.words:
        data.pop("words")
    if not segment.extras:
        data.pop("extras")
    return data


def document_to_dict(document: Document) -> dict[str, Any]:
    audio = document.audio
    return {
        "format": RESULT_FORMAT,
        "task": document.task,
        "schema": document.schema_name,
        "input": _plain(document.source),
        "media": {
            "path": str(audio.path) if audio.path else None,
            "mime_type": audio.mime_type,
            "duration": audio.duration,
            "content_hash": audio.content_hash,
            "sample_rate": audio.sample_rate,
            "channels": audio.channels,
            "bytes_before": audio.bytes_before,
            "bytes_after": audio.bytes_after,
            "original": _plain(audio.original) if audio.original else None,
        },
        "backend": document.backend,
        "model": document.model,
        "usage": _plain(document.usage),
        **({"models": _plain(document.models)} if document.models else {}),
        "speakers": [_plain(s) for s in document.speakers],
        **{f.name: _plain(f.answered) for f in document.answer},
        "segments": [segment_to_dict(s) for s in document.segments],
        "notes": list(document.notes),
        "windows": [_range_to_list(w) for w in document.windows],
        "time_range": _range_to_list(document.time_range) if document.time_range else None,
        "provenance": _plain(document.provenance),
    }


_DOC_KEYS = {"format", "task", "schema", "input", "media", "backend", "model", "usage", "models", "speakers", "segments", "notes", "windows", "time_range", "provenance"}


def document_from_dict(data: Mapping[str, Any]) -> Document:
    if data.get("format") != RESULT_FORMAT:
        raise ValueError(f"not a runpipe result (format {data.get('format')!r}, expected {RESULT_FORMAT!r})")
    source = MediaItem(**data["input"])
    media = data["media"]
    original = media.get("original")
    audio = AudioFile(
        source=source,
        path=Path(media["path"]) if media.get("path") else None,
        mime_type=media["mime_type"],
        duration=media.get("duration"),
        content_hash=media["content_hash"],
        original=AudioInfo(**original) if original else None,
        sample_rate=media.get("sample_rate"),
        channels=media.get("channels"),
        bytes_before=media.get("bytes_before"),
        bytes_after=media.get("bytes_after"),
    )
    segments = tuple(
        Segment(**{**s, "words": tuple(Word(**w) for w in s.get("words", ()))}) for s in data.get("segments", ())
    )
    return Document(
        source=source,
        audio=audio,
        task=data["task"],
        schema_name=data["schema"],
        backend=data["backend"],
        model=data["model"],
        answer=parse_fields({k: v for k, v in data.items() if k not in _DOC_KEYS}),
        segments=segments,
        speakers=tuple(Speaker(**s) for s in data.get("speakers", ())),
        usage=usage_from_dict(data.get("usage")),
        provenance=data.get("provenance", {}),
        notes=tuple(data.get("notes", ())),
        windows=tuple(_range_from_list(w) for w in data.get("windows", ())),
        time_range=_range_from_list(data["time_range"]) if data.get("time_range") else None,
        models=models_from_list(data.get("models")),
    )
