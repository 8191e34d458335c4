"""A local server that speaks the Gemini REST protocol the way google-genai uses it, for tests.

Point the real SDK (or runpipe's Gemini backend) at it and script what "Gemini" answers::

    from runpipe.testing.gemini_server import Answer, FakeGemini, HttpError

    with FakeGemini() as server:
        server.script(HttpError(429, retry_after=1), Answer({"summary": "hi", "segments": []}))
        client = genai.Client(api_key=server.api_key, http_options={"base_url": server.base_url})
        ...
        assert [r.endpoint for r in server.requests] == ["generateContent", "generateContent"]

What it implements, as observed from google-genai 3.4's source and traffic (not guessed):

* ``/v1/``, ``/v1beta/`` and ``/v1alpha/`` prefixes (the SDK defaults to ``v1``; the docs show ``v1beta``).
* The API key in the ``x-goog-api-key`` header (or ``?key=``). Missing: 403 PERMISSION_DENIED;
  wrong: 400 INVALID_ARGUMENT "API key not valid", as Google answers.
* Resumable upload: ``POST /upload/{v}/files`` with ``x-goog-upload-protocol: resumable`` and
  ``x-goog-upload-command: start`` is answered with an ``x-goog-upload-url`` header; the SDK then
  POSTs 8 MiB chunks there (without the API key: the upload id is the credential), each ``upload``
  answered ``x-goog-upload-status: active`` and the last ``upload, finalize`` answered ``final``
  with the file's JSON. Offsets, sizes and chunk granularity are checked strictly. Errors during
  an upload carry ``x-goog-upload-status: final`` so the SDK stops instead of re-sending.
* ``files`` get/list/delete with PROCESSING -> ACTIVE (or FAILED) states per :class:`FileLifecycle`.
* ``models/{model}:generateContent`` and ``:countTokens``. Bodies are checked like the real
  protobuf JSON parser does: both ``lowerCamel`` and ``snake_case`` field names are accepted (the
  SDK mixes them, e.g. ``inlineData.mime_type``), anything else is a 400 "Unknown name".
  Inline data is base64 in either alphabet (the SDK sends URL-safe base64).
* Strictness: a request body over ``inline_limit_bytes`` (100 MB, batch jobs 20 MB, both from
  ``runpipe.plugins.gemini.limits``) is refused; MIME types Gemini does not take (``video/*``) are
  refused; a file that is not ACTIVE cannot be used; undecodable audio is refused.
* Models: ``models`` list/get serve only the names in ``models`` (by default :data:`CURRENT_MODELS`,
  the stable models of late 2026); any other name is a 404 NOT_FOUND saying to call ListModels,
  as Google answers for a retired or misspelt model.
* ``thinkingConfig``: ``thinkingLevel`` must be MINIMAL/LOW/MEDIUM/HIGH and is refused for the
  Gemini 1/2 models (which take a budget); MINIMAL is refused by the models that do not take it
  (3.8 and 3.7 Flash, ``limits.thinking_levels``); a level and a budget together are refused.
* Response schemas: ``responseJsonSchema`` types are JSON Schema type names (a nullable field
  lists ``"null"``); ``responseSchema`` types are single Schema-proto enum values (a list is the
  protobuf parser's 400) and ``nullable`` is a boolean.
* Safety: :class:`BlockedPrompt` answers with ``promptFeedback.blockReason`` and no candidate;
  :class:`SafetyStop` with a candidate that has no content and finish reason SAFETY (or another).
* Video: ``videoMetadata`` offsets must be protobuf durations (``"600s"``); the length of a public
  video URL is unknown unless set in :attr:`FakeGemini.url_seconds` (then countTokens counts
  300 tokens a second of video, of the clip when ``videoMetadata`` cuts it).
* Token counting: 32 tokens per second of audio, ~4 characters per text token. Audio duration is
  read from WAV and FLAC headers directly; other formats are decoded with ffmpeg
  (``runpipe.ffmpeg.ffmpeg_exe``: ``RUNPIPE_FFMPEG``, the PATH, or imageio-ffmpeg's binary).

* The Batch API with inlined requests: ``models/{model}:batchGenerateContent`` answers a long-running
  operation named ``batches/{id}``; ``batches/{id}`` get/cancel/delete and ``batches`` list. The job
  goes PENDING -> RUNNING -> SUCCEEDED (or FAILED/EXPIRED) per :class:`BatchLifecycle`, counted in
  ``batches.get`` polls. Each inlined request is checked like a ``generateContent`` body and answered
  from the same scripts (see :meth:`FakeGemini.script_for` for answers keyed by request content).

* The transcription model ``gemini-3.5-transcribe`` (``server.transcribe``), see
  :mod:`runpipe.testing.fake_transcribe`.

* Context caching: ``cachedContents`` create/get/list/delete. A cache below ``CACHE_MIN_TOKENS``
  (4,096) is refused; it expires after its ``ttl`` (default 1 hour) or at once with
  :meth:`FakeGemini.expire_cache`, after which it is gone (403, as Google answers). generateContent
  with ``cachedContent`` must use the cache's model and set no system instruction or tools; its
  usage counts the cached tokens in ``promptTokenCount`` and ``cachedContentTokenCount``.

Not implemented (yet): ``streamGenerateContent``, batch input from a JSONL file.
"""

from __future__ import annotations

import base64
import binascii
import collections
import datetime as dt
import hashlib
import itertools
import json
import math
import random
import re
import sys
import socket
import struct
import tempfile
import threading
import time
import uuid
import wave
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Mapping, Union
from urllib.parse import parse_qs, urlsplit

from runpipe.errors import MediaError
from runpipe.ffmpeg import decoded_duration
from runpipe.plugins.gemini.limits import (
    AUDIO_TOKENS_PER_SECOND,
    BATCH_REQUEST_LIMIT_BYTES,
    CACHE_MIN_TOKENS,
    INLINE_LIMIT_BYTES,
    MODEL_OUTPUT_CEILING as MAX_OUTPUT_TOKENS,
    VIDEO_TOKENS_PER_SECOND_DEFAULT,
    thinking_levels,
)

__all__ = [
    "Answer",
    "BatchLifecycle",
    "BlockedPrompt",
    "CURRENT_MODELS",
    "Disconnect",
    "FakeGemini",
    "FileLifecycle",
    "HttpError",
    "ModelRequest",
    "RawText",
    "RecordedRequest",
    "SafetyStop",
    "repetition_loop",
    "truncated",
    "noise_wav",
]

MiB = 1024 * 1024
CHARS_PER_TEXT_TOKEN = 4
#: The stable text models of late 2026 and the moving Flash alias (Google's models and
#: deprecations pages); ``gemini-3-flash-preview`` is deprecated and not served. ``gemini-3.5-flash``
#: is deprecated too but still answers: its requests are forwarded to 3.6 Flash
#: (https://ai.google.dev/gemini-api/docs/whats-new-gemini-3.5).
CURRENT_MODELS = ("gemini-3.8-flash", "gemini-3.7-flash", "gemini-3.6-flash", "gemini-3.5-flash", "gemini-3.5-flash-lite", "gemini-flash-latest")
THINKING_LEVELS = frozenset({"MINIMAL", "LOW", "MEDIUM", "HIGH"})
MEDIA_RESOLUTIONS = frozenset({"MEDIA_RESOLUTION_UNSPECIFIED", "MEDIA_RESOLUTION_LOW", "MEDIA_RESOLUTION_MEDIUM", "MEDIA_RESOLUTION_HIGH"})
#: A protobuf Duration in JSON, as ``ttl`` and ``videoMetadata`` offsets take it: seconds "with up
#: to nine fractional digits, terminated by 's'. Example: "3.5s"" (google-genai's CachedContent ttl
#: documentation, https://googleapis.github.io/kotlin-genai/google-genai-kotlin/com.google.genai.kotlin.types/-create-cached-content-config/ttl.html).
_DURATION = re.compile(r"\d+(\.\d{1,9})?s")
API_VERSIONS = ("v1", "v1beta", "v1alpha")
_VERSION = "(" + "|".join(API_VERSIONS) + ")"
FILE_TTL = dt.timedelta(hours=48)

#: The two ways to ask for a nullable field, one per schema field: ``responseJsonSchema`` is JSON
#: Schema, where a nullable field lists "null" among its types (``"type": ["string", "null"]``,
#: https://ai.google.dev/gemini-api/docs/structured-output); ``responseSchema`` is the Schema
#: proto, "a select subset of an OpenAPI 3.0 schema object", whose ``type`` is one enum value and
#: whose ``nullable`` boolean allows null (https://ai.google.dev/api/python/google/ai/generativelanguage/Schema).
#: A list in ``responseSchema.type`` gets the protobuf parser's 400 (quoted from the real API in
#: https://github.com/prism-php/prism/issues/974).
JSON_SCHEMA_TYPES = frozenset({"string", "number", "integer", "boolean", "object", "array", "null"})
OPENAPI_TYPES = frozenset({"TYPE_UNSPECIFIED", "STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"})
_SUBSCHEMA_MAPS = ("properties", "$defs", "defs")
_SUBSCHEMA_LISTS = ("anyOf", "any_of", "oneOf", "prefixItems")


def _subschemas(schema: dict, where: str) -> Iterable[tuple[Any, str]]:
    for key in _SUBSCHEMA_MAPS:
        for name, sub in (schema.get(key) or {}).items():
            yield sub, f"{where}.{key}[{name}]"
    for key in _SUBSCHEMA_LISTS:
        for index, sub in enumerate(schema.get(key) or []):
            yield sub, f"{where}.{key}[{index}]"
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield schema[key], f"{where}.{key}"


def _check_openapi_schema(schema: Any, where: str) -> None:
    if not isinstance(schema, dict):
        raise RequestRejected(400, f"Invalid JSON payload received. Invalid value at '{where}': a Schema object is expected.")
    kind = schema.get("type")
    if isinstance(kind, list):
        raise RequestRejected(400, f"Invalid JSON payload received. Unknown name \"type\" at '{where}': Proto field is not repeating, cannot start list.")
    if kind is not None and str(kind).upper() not in OPENAPI_TYPES:
        raise RequestRejected(400, f"Invalid value at '{where}.type' (type.googleapis.com/google.ai.generativelanguage.v1beta.Type), \"{kind}\"")
    if "nullable" in schema and not isinstance(schema["nullable"], bool):
        raise RequestRejected(400, f"Invalid value at '{where}.nullable' (TYPE_BOOL), {schema['nullable']!r}")
    for sub, place in _subschemas(schema, where):
        _check_openapi_schema(sub, place)


def _check_json_schema_types(schema: Any, where: str) -> None:
    if isinstance(schema, bool):
        return
    if not isinstance(schema, dict):
        raise RequestRejected(400, f"Invalid JSON schema at '{where}': a schema must be an object or a boolean.")
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [] if kind is None else [kind]
    if (isinstance(kind, list) and not kind) or any(k not in JSON_SCHEMA_TYPES for k in kinds):
        raise RequestRejected(400, f"Invalid JSON schema at '{where}.type': {kind!r} is not a JSON Schema type "
                                   f"(one of {', '.join(sorted(JSON_SCHEMA_TYPES))}, or a list of them).")
    for sub, place in _subschemas(schema, where):
        _check_json_schema_types(sub, place)
  # uploaded files live 48 hours on the real service

#: MIME types Gemini accepts as media (audio, video, and the image/document types a prompt may carry).
ACCEPTED_MIME_TYPES = frozenset(
    {
        "audio/wav", "audio/mp3", "audio/mpeg", "audio/aiff", "audio/aac", "audio/ogg", "audio/flac",
        "video/mp4", "video/mpeg", "video/mov", "video/quicktime", "video/avi", "video/x-flv",
        "video/mpg", "video/webm", "video/wmv", "video/3gpp",
        "image/png", "image/jpeg", "image/webp", "image/heic", "image/heif",
        "application/pdf", "text/plain",
    }
)

_GRPC_STATUS = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
    409: "ALREADY_EXISTS", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL",
    501: "UNIMPLEMENTED", 502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED",
}
_DEFAULT_MESSAGES = {
    400: "Request contains an invalid argument.",
    429: "You exceeded your current quota, please check your plan and billing details.",
    500: "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
    502: "Bad gateway.",
    503: "The model is overloaded. Please try again later.",
    504: "Deadline expired before operation could complete.",
}


# ---------------------------------------------------------------------------------------------
# Scripted responses
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RawText:
    """A model answer whose text is given verbatim (valid JSON or not).

    ``finish_reason`` is reported as is (``"MAX_TOKENS"`` for a cut answer); ``usage`` replaces
    the computed ``usageMetadata`` entirely; ``delay`` waits before answering.
    """

    text: str
    finish_reason: str = "STOP"
    thoughts_tokens: int = 0
    usage: Mapping[str, Any] | None = None
    delay: float = 0.0


@dataclass(frozen=True)
class Answer:
    """A model answer whose text is ``json.dumps(data)``."""

    data: Any
    finish_reason: str = "STOP"
    thoughts_tokens: int = 0
    usage: Mapping[str, Any] | None = None
    delay: float = 0.0

    def as_text(self) -> RawText:
        return RawText(json.dumps(self.data, ensure_ascii=False), self.finish_reason, self.thoughts_tokens, self.usage, self.delay)


@dataclass(frozen=True)
class HttpError:
    """An error answer in Google's envelope ``{"error": {"code", "message", "status", "details"}}``.

    ``retry_after`` becomes a ``Retry-After`` header (seconds); ``retry_delay`` (seconds) becomes a
    ``google.rpc.RetryInfo`` detail, as Gemini sends with its 429s.
    """

    status: int
    message: str | None = None
    grpc_status: str | None = None
    retry_after: float | None = None
    retry_delay: float | None = None
    delay: float = 0.0


@dataclass(frozen=True)
class Disconnect:
    """Close the connection without answering (what a connection reset looks like to the client)."""

    delay: float = 0.0


@dataclass(frozen=True)
class BlockedPrompt:
    """The prompt refused by a safety filter: ``promptFeedback.blockReason`` and no candidate."""

    reason: str = "SAFETY"
    delay: float = 0.0


@dataclass(frozen=True)
class SafetyStop:
    """A candidate stopped by a filter: no content, finish reason ``reason`` (SAFETY, PROHIBITED_CONTENT, ...)."""

    reason: str = "SAFETY"
    delay: float = 0.0


Scripted = Union[Answer, RawText, HttpError, Disconnect, BlockedPrompt, SafetyStop]
_GENERATE_SCRIPTS = (Answer, RawText, HttpError, Disconnect, BlockedPrompt, SafetyStop)


def truncated(data: Any, keep: float = 0.5, thoughts_tokens: int = 0) -> RawText:
    """An answer cut by the output limit: the first ``keep`` share of ``data``'s JSON, MAX_TOKENS."""
    text = json.dumps(data, ensure_ascii=False)
    return RawText(text[: max(1, int(len(text) * keep))], finish_reason="MAX_TOKENS", thoughts_tokens=thoughts_tokens)


def repetition_loop(prefix: str, phrase: str, times: int = 300) -> RawText:
    """An answer that repeats ``phrase`` until the output limit, the way Gemini loops."""
    return RawText(prefix + phrase * times, finish_reason="MAX_TOKENS")


@dataclass(frozen=True)
class FileLifecycle:
    """How an uploaded file behaves: ``processing_polls`` ``files.get`` answers say PROCESSING,
    then the file shows ``outcome`` (ACTIVE, or FAILED with ``error_message``)."""

    processing_polls: int = 1
    outcome: Literal["ACTIVE", "FAILED"] = "ACTIVE"
    error_message: str = "The file could not be processed."


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it.

    ``endpoint`` is one of ``generateContent``, ``transcribe`` (generateContent on a transcription
    model), ``countTokens``, ``upload.start``, ``upload.chunk``,
    ``files.get``, ``files.list``, ``files.delete``, ``batches.create``, ``batches.get``,
    ``batches.list``, ``batches.cancel``, ``batches.delete`` or ``unknown``. ``headers`` are lower-cased,
    with the API key replaced by ``"<redacted>"``; ``authenticated`` says whether the right key was
    sent. ``body`` is the parsed JSON body (None for upload chunks and empty bodies); ``size`` is
    the body's length in bytes. ``time`` is ``time.monotonic()`` at arrival.
    """

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: Any
    size: int
    endpoint: str
    api_version: str | None
    authenticated: bool
    time: float


# ---------------------------------------------------------------------------------------------
# Request checking: the protobuf JSON parser's view of GenerateContentRequest
# ---------------------------------------------------------------------------------------------

ANY = None  # a field whose value is not checked further (free-form or out of scope here)

_THINKING_CONFIG = {"includeThoughts": ANY, "thinkingBudget": ANY, "thinkingLevel": ANY}
_VIDEO_METADATA = {"startOffset": ANY, "endOffset": ANY, "fps": ANY}
_GENERATION_CONFIG = {
    "stopSequences": ANY, "responseMimeType": ANY, "responseSchema": ANY, "responseJsonSchema": ANY,
    "responseModalities": ANY, "candidateCount": ANY, "maxOutputTokens": ANY, "temperature": ANY,
    "topP": ANY, "topK": ANY, "seed": ANY, "presencePenalty": ANY, "frequencyPenalty": ANY,
    "responseLogprobs": ANY, "logprobs": ANY, "enableEnhancedCivicAnswers": ANY, "speechConfig": ANY,
    "thinkingConfig": _THINKING_CONFIG, "imageConfig": ANY, "mediaResolution": ANY,
    "audioTranscriptionConfig": ANY,
}
_BLOB = {"mimeType": ANY, "data": ANY, "displayName": ANY}
_FILE_DATA = {"mimeType": ANY, "fileUri": ANY, "displayName": ANY}
_PART = {
    "text": ANY, "inlineData": _BLOB, "fileData": _FILE_DATA, "thought": ANY, "thoughtSignature": ANY,
    "videoMetadata": _VIDEO_METADATA, "functionCall": ANY, "functionResponse": ANY, "executableCode": ANY,
    "codeExecutionResult": ANY, "mediaResolution": ANY, "partMetadata": ANY,
}
_CONTENT = {"parts": [_PART], "role": ANY}
_GENERATE_CONTENT_REQUEST = {
    "model": ANY, "contents": [_CONTENT], "systemInstruction": _CONTENT, "generationConfig": _GENERATION_CONFIG,
    "safetySettings": ANY, "tools": ANY, "toolConfig": ANY, "cachedContent": ANY, "serviceTier": ANY,
    "store": ANY, "labels": ANY,
}
_CACHED_CONTENT = {
    "name": ANY, "model": ANY, "contents": [_CONTENT], "systemInstruction": _CONTENT, "tools": ANY, "toolConfig": ANY,
    "ttl": ANY, "expireTime": ANY, "displayName": ANY,
}
_COUNT_TOKENS_REQUEST = {"contents": [_CONTENT], "generateContentRequest": _GENERATE_CONTENT_REQUEST}
_FILE = {
    "name": ANY, "displayName": ANY, "mimeType": ANY, "sizeBytes": ANY, "createTime": ANY,
    "updateTime": ANY, "expirationTime": ANY, "sha256Hash": ANY, "uri": ANY, "source": ANY,
}
_CREATE_FILE_REQUEST = {"file": _FILE}
_MEDIA_FIELDS = ("text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode", "codeExecutionResult")


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


class RequestRejected(Exception):
    """Raised inside the server to answer with an error envelope."""

    def __init__(
        self,
        status: int,
        message: str,
        grpc_status: str | None = None,
        details: list | None = None,
        headers: Mapping[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.grpc_status = grpc_status or _GRPC_STATUS.get(status, "UNKNOWN")
        self.details = details or []
        self.headers = dict(headers or {})


def _canonical(value: Any, spec: Any, where: str) -> Any:
    """Return ``value`` with every field name in lowerCamel form, rejecting unknown names.

    ``spec`` is a dict of known fields (lowerCamel -> sub-spec), a one-element list for repeated
    messages, or ANY. The error text is the one Google's JSON parser produces.
    """
    if spec is ANY or value is None:
        return value
    if isinstance(spec, list):
        if not isinstance(value, list):
            raise RequestRejected(400, f"Invalid JSON payload received. Expected an array at '{where}'.")
        return [_canonical(item, spec[0], f"{where}[{i}]") for i, item in enumerate(value)]
    if not isinstance(value, dict):
        raise RequestRejected(400, f"Invalid JSON payload received. Expected an object at '{where}'.")
    by_alias = {alias: name for name in spec for alias in (name, _snake(name))}
    result = {}
    for key, item in value.items():
        name = by_alias.get(key)
        if name is None:
            at = f" at '{where}'" if where else ""
            raise RequestRejected(
                400,
                f'Invalid JSON payload received. Unknown name "{key}"{at}: Cannot find field.',
                details=[{
                    "@type": "type.googleapis.com/google.rpc.BadRequest",
                    "fieldViolations": [{"field": where, "description": f'Invalid JSON payload received. Unknown name "{key}"{at}: Cannot find field.'}],
                }],
            )
        result[name] = _canonical(item, spec[name], f"{where}.{_snake(name)}" if where else _snake(name))
    return result


def _decode_base64(text: Any, where: str) -> bytes:
    """Decode standard or URL-safe base64 (the SDK sends URL-safe), padded or not."""
    if not isinstance(text, str):
        raise RequestRejected(400, f"Invalid value at '{where}' (TYPE_BYTES), expected a base64 string.")
    cleaned = text.strip().replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise RequestRejected(400, f"Invalid value at '{where}' (TYPE_BYTES), Base64 decoding failed for \"{text[:40]}\"") from None


# ---------------------------------------------------------------------------------------------
# Audio duration, for token counts
# ---------------------------------------------------------------------------------------------


def _wav_duration(data: bytes) -> float | None:
    if len(data) < 12 or data[:4] not in (b"RIFF", b"RF64") or data[8:12] != b"WAVE":
        return None
    byte_rate, position = None, 12
    while position + 8 <= len(data):
        chunk_id, size = data[position : position + 4], struct.unpack("<I", data[position + 4 : position + 8])[0]
        body = position + 8
        if chunk_id == b"fmt " and size >= 16:
            byte_rate = struct.unpack("<I", data[body + 8 : body + 12])[0]
        elif chunk_id == b"data":
            available = len(data) - body
            # 0xFFFFFFFF (or a size past the end) marks a stream whose length was never patched in.
            data_size = available if size == 0xFFFFFFFF or size > available else size
            return data_size / byte_rate if byte_rate else None
        position = body + size + (size & 1)
    return None


def _flac_duration(data: bytes) -> float | None:
    # fLaC, then the STREAMINFO block: 20-bit sample rate and 36-bit sample count at bytes 18..26.
    if len(data) < 42 or data[:4] != b"fLaC":
        return None
    bits = int.from_bytes(data[18:26], "big")
    sample_rate = bits >> 44
    total_samples = bits & ((1 << 36) - 1)
    return total_samples / sample_rate if sample_rate and total_samples else None


def _ffmpeg_duration(data: bytes) -> float | None:
    with tempfile.NamedTemporaryFile(suffix=".media") as handle:
        handle.write(data)
        handle.flush()
        try:
            return decoded_duration(Path(handle.name)) or None
        except MediaError:  # undecodable, or no ffmpeg at all
            return None


def media_duration(data: bytes) -> float | None:
    """Seconds of audio in ``data`` (WAV/FLAC from headers, else ffmpeg), None if undecodable."""
    return _wav_duration(data) or _flac_duration(data) or _ffmpeg_duration(data)


def noise_wav(path: Any, seconds: float, *, rate: int = 16000) -> Any:
    """Write ``seconds`` of 16-bit mono white noise as WAV; returns ``path``.

    Noise does not compress, which makes it the quick way to a file of a given size (for tones,
    see ``runpipe.testing.tone_wav``).
    """
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(random.Random(0).randbytes(int(seconds * rate) * 2))
    return path


def _text_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TEXT_TOKEN)


# ---------------------------------------------------------------------------------------------
# Server state
# ---------------------------------------------------------------------------------------------


def _rfc3339(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class _StoredFile:
    name: str
    mime_type: str
    data: bytes
    display_name: str | None
    lifecycle: FileLifecycle
    created: dt.datetime
    expires: dt.datetime
    polls: int = 0
    duration: float | None = None
    duration_known: bool = False

    @property
    def state(self) -> str:
        return "PROCESSING" if self.polls < self.lifecycle.processing_polls else self.lifecycle.outcome

    def audio_seconds(self) -> float | None:
        if not self.duration_known:  # decode once, lazily: most tests never count tokens
            self.duration, self.duration_known = media_duration(self.data), True
        return self.duration


@dataclass
class _Cache:
    name: str
    model: str
    tokens: int
    created: dt.datetime
    expires: dt.datetime
    display_name: str | None = None

    def as_json(self) -> dict:
        document = {
            "name": self.name, "model": self.model, "createTime": _rfc3339(self.created), "updateTime": _rfc3339(self.created),
            "expireTime": _rfc3339(self.expires), "usageMetadata": {"totalTokenCount": self.tokens},
        }
        if self.display_name:
            document["displayName"] = self.display_name
        return document


@dataclass
class _UploadSession:
    mime_type: str
    declared_size: int
    file_fields: dict
    received: bytearray = field(default_factory=bytearray)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx expects
    server: "_Server"

    def log_message(self, format: str, *args: Any) -> None:  # the request log is FakeGemini.requests
        pass

    def do_GET(self) -> None:
        self.server.fake._dispatch(self)

    do_POST = do_DELETE = do_PATCH = do_GET


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: "FakeGemini"

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up early (a timeout, a cancelled run) is normal for a server, not a
        traceback on stderr: socketserver's default would print one into the output of the
        command under test."""
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


class FakeGemini:
    """A scripted Gemini REST server on ``127.0.0.1`` (random port). Use as a context manager.

    :param api_key: the key clients must send (``server.api_key``).
    :param models: the models the key can use: listed by models.list, found by models.get, accepted
        by generateContent and countTokens (default :data:`CURRENT_MODELS`; None: any name is
        accepted, and the current ones are listed).
    :param processing_polls: default :class:`FileLifecycle` for uploads (see :meth:`script_uploads`).
    :param inline_limit_bytes: largest request body ``generateContent``/``countTokens`` take.
    :param upload_granularity: non-final upload chunks must be a multiple of this (8 MiB, as Google).
    :param strict_media: refuse audio whose duration cannot be decoded.
    """

    def __init__(
        self,
        *,
        api_key: str = "fake-gemini-key-0123456789",
        models: Iterable[str] | None = CURRENT_MODELS,
        processing_polls: int = 1,
        inline_limit_bytes: int = INLINE_LIMIT_BYTES,
        upload_granularity: int = 8 * MiB,
        strict_media: bool = True,
    ):
        self.api_key = api_key
        self.models = tuple(dict.fromkeys(models)) if models is not None else None
        self.default_lifecycle = FileLifecycle(processing_polls=processing_polls)
        self.inline_limit_bytes = inline_limit_bytes
        self.upload_granularity = upload_granularity
        self.strict_media = strict_media
        #: Answer given when the generateContent script is empty (None: 501 saying so).
        self.default_response: Scripted | None = None
        #: Seconds of public video URLs (Google fetches those; here they are unknown unless set).
        self.url_seconds: dict[str, float] = {}
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._scripts: dict[str, collections.deque] = {"generateContent": collections.deque(), "countTokens": collections.deque()}
        self._lifecycles: collections.deque[FileLifecycle] = collections.deque()
        self._files: dict[str, _StoredFile] = {}
        self._uploads: dict[str, _UploadSession] = {}
        self._ids = itertools.count(1)
        self._init_batches()
        self._caches: dict[str, _Cache] = {}
        from runpipe.testing.fake_transcribe import Transcriptions  # it builds on this module

        #: The transcription model (gemini-3.5-transcribe): scripts and access, see fake_transcribe.
        self.transcribe = Transcriptions()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> "FakeGemini":
        """Start serving in a background thread; returns self."""
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.fake = self
        # A short poll interval makes stop() (and so every test's teardown) quick.
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), name="FakeGemini", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "FakeGemini":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` -- give it to ``HttpOptions(base_url=...)``."""
        if self._httpd is None:
            raise RuntimeError("FakeGemini is not running; use it as a context manager or call start()")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    # -- scripting ------------------------------------------------------------------------------

    def script(self, *responses: Scripted) -> "FakeGemini":
        """Queue answers for ``generateContent``, used in order, one per request."""
        self._enqueue("generateContent", responses)
        return self

    def script_count_tokens(self, *responses: HttpError | Disconnect) -> "FakeGemini":
        """Queue failures for ``countTokens``; once they are used up, tokens are counted."""
        self._enqueue("countTokens", responses)
        return self

    def script_uploads(self, *lifecycles: FileLifecycle) -> "FakeGemini":
        """Queue the lifecycles of the next uploaded files, in upload order."""
        with self._lock:
            self._lifecycles.extend(lifecycles)
        return self

    def _enqueue(self, endpoint: str, responses: Iterable[Any]) -> None:
        allowed = (HttpError, Disconnect) if endpoint == "countTokens" else _GENERATE_SCRIPTS
        for response in responses:
            if not isinstance(response, allowed):
                raise TypeError(f"cannot script {type(response).__name__} for {endpoint}")
        with self._lock:
            self._scripts[endpoint].extend(responses)

    def pending(self, endpoint: str = "generateContent") -> int:
        """How many scripted responses for ``endpoint`` are still unused."""
        with self._lock:
            return len(self._scripts[endpoint])

    # -- inspection -----------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    def requests_to(self, endpoint: str) -> list[RecordedRequest]:
        """The recorded requests to one endpoint (see :class:`RecordedRequest`)."""
        return [r for r in self.requests if r.endpoint == endpoint]

    @property
    def file_names(self) -> list[str]:
        """Names (``files/...``) of the files currently stored."""
        with self._lock:
            return list(self._files)

    def file_bytes(self, name: str) -> bytes:
        """The content of a stored file, to check what was uploaded."""
        with self._lock:
            return self._files[name].data

    def expire(self, name: str) -> None:
        """Make a file vanish as it does when its 48 hours are over."""
        with self._lock:
            del self._files[name]

    # -- request handling -----------------------------------------------------------------------

    def _dispatch(self, handler: _Handler) -> None:
        url = urlsplit(handler.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        headers = {k.lower(): v for k, v in handler.headers.items()}
        length = int(headers.get("content-length") or 0)
        raw = handler.rfile.read(length) if length else b""
        endpoint, version, target = self._route(handler.command, url.path, query)
        sent_key = headers.get("x-goog-api-key") or query.get("key")
        record_headers = {k: ("<redacted>" if k == "x-goog-api-key" else v) for k, v in headers.items()}
        body = None
        if raw and endpoint != "upload.chunk":
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        record = RecordedRequest(
            method=handler.command, path=url.path, query={k: v for k, v in query.items() if k != "key"},
            headers=record_headers, body=body, size=len(raw), endpoint=endpoint, api_version=version,
            authenticated=sent_key == self.api_key, time=time.monotonic(),
        )
        with self._lock:
            self._requests.append(record)
        extra_headers: dict[str, str] = {}
        if endpoint == "upload.chunk":
            # Without an upload status the SDK re-sends the chunk after 1, 2, 4 s; "final" stops it.
            extra_headers["x-goog-upload-status"] = "final"
        try:
            if endpoint != "upload.chunk":  # the upload URL's id is the credential, as with Google
                self._check_key(sent_key)
            status, payload, headers_out = self._handle(endpoint, target, version, query, headers, raw, handler)
        except RequestRejected as rejected:
            status = rejected.status
            payload = _envelope(rejected.status, rejected.message, rejected.grpc_status, rejected.details)
            headers_out = {**extra_headers, **rejected.headers}
        except _Disconnected:
            handler.close_connection = True
            return
        self._send(handler, status, payload, headers_out)

    def _route(self, method: str, path: str, query: Mapping[str, str]) -> tuple[str, str | None, str | None]:
        batch_route = _route_batches(method, path)
        if batch_route is not None:
            return batch_route
        match = re.fullmatch(rf"/{_VERSION}/cachedContents(?:/([a-z0-9-]+))?", path)
        if match:
            version, cache_id = match.groups()
            endpoint = {("POST", False): "caches.create", ("GET", False): "caches.list", ("GET", True): "caches.get",
                        ("DELETE", True): "caches.delete"}.get((method, cache_id is not None))
            if endpoint:
                return endpoint, version, cache_id and f"cachedContents/{cache_id}"
        match = re.fullmatch(rf"/upload/{_VERSION}/files", path)
        if match and method == "POST":
            return ("upload.chunk" if "upload_id" in query else "upload.start"), match.group(1), None
        match = re.fullmatch(rf"/{_VERSION}/files(?:/([a-z0-9-]+))?", path)
        if match:
            version, file_id = match.groups()
            if file_id is None and method == "GET":
                return "files.list", version, None
            if file_id is not None and method in ("GET", "DELETE"):
                return f"files.{'get' if method == 'GET' else 'delete'}", version, f"files/{file_id}"
        match = re.fullmatch(rf"/{_VERSION}/models/([^/:]+):(generateContent|countTokens)", path)
        if match and method == "POST":
            return self.transcribe.endpoint(match.group(3), match.group(2)), match.group(1), match.group(2)
        match = re.fullmatch(rf"/{_VERSION}/models(?:/([^/:]+))?", path)
        if match and method == "GET":
            return ("models.get" if match.group(2) else "models.list"), match.group(1), match.group(2)
        return "unknown", None, None

    def _check_key(self, sent_key: str | None) -> None:
        if not sent_key:
            raise RequestRejected(
                403,
                "Method doesn't allow unregistered callers (callers without established identity). "
                "Please use API Key or other form of API consumer identity to call this API.",
            )
        if sent_key != self.api_key:
            raise RequestRejected(
                400,
                "API key not valid. Please pass a valid API key.",
                details=[{
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"},
                }],
            )

    def _handle(self, endpoint, target, version, query, headers, raw, handler):
        if endpoint.startswith("caches."):
            return 200, self._handle_caches(endpoint, target, version, raw), {}
        if endpoint.startswith("batches."):
            return self._handle_batches(endpoint, target, version, query, raw)
        if endpoint in ("generateContent", "transcribe"):
            return self._generate_content(target, raw, handler, version)
        if endpoint == "countTokens":
            return self._count_tokens(target, raw, handler, version)
        if endpoint == "models.list":
            return 200, self._list_models(query), {}
        if endpoint == "models.get":
            self._check_model(target, version, "get")
            return 200, _model_json(target), {}
        if endpoint == "upload.start":
            return self._upload_start(version, headers, raw)
        if endpoint == "upload.chunk":
            return self._upload_chunk(query, headers, raw)
        if endpoint == "files.get":
            return 200, self._poll_file(target, version), {}
        if endpoint == "files.list":
            return 200, self._list_files(version, query), {}
        if endpoint == "files.delete":
            with self._lock:
                if self._files.pop(target, None) is None:
                    raise _file_not_found(target)
            return 200, {}, {}
        raise RequestRejected(404, "Method not found.")

    def _send(self, handler: _Handler, status: int, payload: Any, headers: Mapping[str, str]) -> None:
        data = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json; charset=UTF-8")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    # -- files ----------------------------------------------------------------------------------

    def _file_json(self, stored: _StoredFile, version: str | None) -> dict:
        document = {
            "name": stored.name,
            "mimeType": stored.mime_type,
            "sizeBytes": str(len(stored.data)),  # int64 travels as a string in proto JSON
            "createTime": _rfc3339(stored.created),
            "updateTime": _rfc3339(stored.created),
            "expirationTime": _rfc3339(stored.expires),
            "sha256Hash": base64.b64encode(hashlib.sha256(stored.data).hexdigest().encode()).decode(),
            "uri": f"{self.base_url}/{version or 'v1beta'}/{stored.name}",
            "state": stored.state,
            "source": "UPLOADED",
        }
        if stored.display_name:
            document["displayName"] = stored.display_name
        if stored.state == "FAILED":
            document["error"] = {"code": 400, "message": stored.lifecycle.error_message}
        return document

    def _poll_file(self, name: str, version: str | None) -> dict:
        with self._lock:
            stored = self._files.get(name)
            if stored is None:
                raise _file_not_found(name)
            answer = self._file_json(stored, version)
            stored.polls += 1
            return answer

    def _list_files(self, version: str | None, query: Mapping[str, str]) -> dict:
        page_size = min(int(query.get("pageSize") or 10), 100)
        start = int(query.get("pageToken") or 0)
        with self._lock:
            stored = list(self._files.values())
            page = [self._file_json(f, version) for f in stored[start : start + page_size]]
        answer: dict = {"files": page} if page else {}
        if start + page_size < len(stored):
            answer["nextPageToken"] = str(start + page_size)
        return answer

    def _upload_start(self, version: str | None, headers: Mapping[str, str], raw: bytes):
        if headers.get("x-goog-upload-protocol") != "resumable" or headers.get("x-goog-upload-command") != "start":
            raise RequestRejected(400, "FakeGemini only implements resumable uploads (x-goog-upload-protocol: resumable, command start).")
        try:
            declared = int(headers["x-goog-upload-header-content-length"])
        except (KeyError, ValueError):
            raise RequestRejected(400, "x-goog-upload-header-content-length is required for a resumable upload.") from None
        body = _canonical(_json_body(raw) if raw else {}, _CREATE_FILE_REQUEST, "")
        fields = dict(body.get("file") or {})
        mime_type = fields.get("mimeType") or headers.get("x-goog-upload-header-content-type")
        if not mime_type:
            raise RequestRejected(400, "The file's MIME type is required.")
        if "sizeBytes" in fields and int(fields["sizeBytes"]) != declared:
            raise RequestRejected(400, f"file.size_bytes ({fields['sizeBytes']}) does not match the upload's content length ({declared}).")
        upload_id = uuid.uuid4().hex
        with self._lock:
            if fields.get("name") in self._files:
                raise RequestRejected(409, f"A file named {fields['name']} already exists.")
            self._uploads[upload_id] = _UploadSession(mime_type, declared, fields)
        upload_url = f"{self.base_url}/upload/{version}/files?upload_id={upload_id}&upload_protocol=resumable"
        return 200, {}, {
            "x-goog-upload-url": upload_url,
            "x-goog-upload-status": "active",
            "x-goog-upload-chunk-granularity": str(self.upload_granularity),
        }

    def _upload_chunk(self, query: Mapping[str, str], headers: Mapping[str, str], raw: bytes):
        with self._lock:
            session = self._uploads.get(query["upload_id"])
        if session is None:
            raise RequestRejected(404, "Unknown or finished upload.")
        commands = {c.strip() for c in headers.get("x-goog-upload-command", "").split(",") if c.strip()}
        if not commands or not commands <= {"upload", "finalize", "query", "cancel"}:
            raise RequestRejected(400, f"Bad x-goog-upload-command {headers.get('x-goog-upload-command')!r}.")
        if "query" in commands:
            return 200, {}, {"x-goog-upload-status": "active", "x-goog-upload-size-received": str(len(session.received))}
        if "cancel" in commands:
            with self._lock:
                del self._uploads[query["upload_id"]]
            return 200, {}, {"x-goog-upload-status": "cancelled"}
        if "upload" in commands:
            self._accept_chunk(session, headers, raw, final="finalize" in commands)
        if "finalize" not in commands:
            return 200, {}, {"x-goog-upload-status": "active"}
        if len(session.received) != session.declared_size:
            raise RequestRejected(400, f"Upload finalized after {len(session.received)} of {session.declared_size} declared bytes.")
        stored = self._store_file(session)
        with self._lock:
            del self._uploads[query["upload_id"]]
            document = self._file_json(stored, "v1beta")
        return 200, {"file": document}, {"x-goog-upload-status": "final"}

    def _accept_chunk(self, session: _UploadSession, headers: Mapping[str, str], raw: bytes, *, final: bool) -> None:
        try:
            offset = int(headers["x-goog-upload-offset"])
        except (KeyError, ValueError):
            raise RequestRejected(400, "x-goog-upload-offset is required with an upload command.") from None
        if offset != len(session.received):
            raise RequestRejected(400, f"Invalid upload offset {offset}: {len(session.received)} bytes were received so far.")
        if not final and len(raw) % self.upload_granularity:
            raise RequestRejected(400, f"A non-final chunk must be a multiple of {self.upload_granularity} bytes, got {len(raw)}.")
        if len(session.received) + len(raw) > session.declared_size:
            raise RequestRejected(400, f"Upload exceeds its declared size of {session.declared_size} bytes.")
        session.received.extend(raw)

    def _store_file(self, session: _UploadSession) -> _StoredFile:
        now = dt.datetime.now(dt.timezone.utc)
        with self._lock:
            name = session.file_fields.get("name") or f"files/{next(self._ids):04d}{uuid.uuid4().hex[:8]}"
            lifecycle = self._lifecycles.popleft() if self._lifecycles else self.default_lifecycle
            stored = _StoredFile(
                name=name, mime_type=session.mime_type, data=bytes(session.received),
                display_name=session.file_fields.get("displayName"), lifecycle=lifecycle,
                created=now, expires=now + FILE_TTL,
            )
            self._files[name] = stored
        return stored

    # -- generateContent / countTokens ----------------------------------------------------------

    def _parse_model_request(self, model: str, raw: bytes, spec: dict, version: str | None, method: str, limit: int | None = None) -> dict:
        limit = self.inline_limit_bytes if limit is None else limit
        if len(raw) > limit:
            raise RequestRejected(400, f"Request payload size exceeds the limit: {limit} bytes.")
        self._check_model(model, version, method)
        return _canonical(_json_body(raw), spec, "")

    def _check_model(self, model: str, version: str | None, method: str) -> None:
        if self.transcribe.endpoint("generateContent", model) == "transcribe":
            return  # the transcription model answers for its own access (``server.transcribe.access``)
        if self.models is not None and model.removeprefix("models/") not in self.models:
            raise RequestRejected(
                404, f"models/{model.removeprefix('models/')} is not found for API version {version}, or is not supported "
                f"for {method}. Call ListModels to see the list of available models and their supported methods.",
            )

    def _list_models(self, query: Mapping[str, str]) -> dict:
        names = list(self.models if self.models is not None else CURRENT_MODELS)
        page_size = min(int(query.get("pageSize") or 50), 1000)
        start = int(query.get("pageToken") or 0)
        answer: dict = {"models": [_model_json(name) for name in names[start : start + page_size]]}
        if start + page_size < len(names):
            answer["nextPageToken"] = str(start + page_size)
        return answer

    def _resolve_media(self, contents: list, where: str) -> list[float | None]:
        """Check every part of ``contents``; return the seconds of audio of each media part (None: unknown)."""
        if not contents:
            raise RequestRejected(400, "* GenerateContentRequest.contents: contents is not specified\n")
        media = []
        for i, content in enumerate(contents):
            if content.get("role") not in (None, "user", "model"):
                raise RequestRejected(400, f"Please use a valid role: user, model. ({where}[{i}].role)")
            parts = content.get("parts") or []
            if not parts:
                raise RequestRejected(400, f"* GenerateContentRequest.{where}[{i}].parts: contents.parts must not be empty.\n")
            for j, part in enumerate(parts):
                at = f"{where}[{i}].parts[{j}]"
                present = [name for name in _MEDIA_FIELDS if name in part]
                if len(present) != 1:
                    raise RequestRejected(400, f"* GenerateContentRequest.{at}.data: required oneof field 'data' must have one initialized field\n")
                if "inlineData" in part:
                    media.append(self._inline_media(part["inlineData"], f"{at}.inline_data"))
                elif "fileData" in part:
                    seconds = self._file_media(part["fileData"], f"{at}.file_data")
                    media.append(_clipped(seconds, part.get("videoMetadata"), f"{at}.video_metadata"))
        return media

    def _inline_media(self, blob: dict, where: str) -> float | None:
        mime_type = _accepted_mime(blob.get("mimeType"), where)
        data = _decode_base64(blob.get("data"), f"{where}.data")
        return self._seconds(data, mime_type, where)

    def _file_media(self, file_data: dict, where: str) -> float | None:
        uri = file_data.get("fileUri")
        if not uri:
            raise RequestRejected(400, f"* GenerateContentRequest.{where}.file_uri: file_uri must be set.\n")
        parsed = urlsplit(uri)
        match = re.search(r"/(files/[a-z0-9-]+)$", parsed.path)
        if parsed.netloc == urlsplit(self.base_url).netloc and match:
            with self._lock:
                stored = self._files.get(match.group(1))
                if stored is None:
                    raise _file_not_found(match.group(1))
                if stored.state != "ACTIVE":
                    raise RequestRejected(400, f"The File {stored.name.removeprefix('files/')} is not in an ACTIVE state and usage is not allowed.", "FAILED_PRECONDITION")
            mime_type = _accepted_mime(file_data.get("mimeType") or stored.mime_type, where)
            seconds = stored.audio_seconds()
            if seconds is None and self.strict_media and mime_type.startswith(("audio/", "video/")):
                raise RequestRejected(400, f"The media in {stored.name} could not be decoded.")
            return seconds
        if parsed.scheme in ("http", "https") and parsed.netloc:
            # Public URLs (YouTube and others) are fetched by Google; their length is unknown here
            # unless a test set it.
            if file_data.get("mimeType"):
                _accepted_mime(file_data["mimeType"], where)
            return self.url_seconds.get(uri)
        raise RequestRejected(400, f"Invalid or unsupported file uri: {uri}")

    def _seconds(self, data: bytes, mime_type: str, where: str) -> float | None:
        if not mime_type.startswith(("audio/", "video/")):
            return None
        seconds = media_duration(data)
        if seconds is None and self.strict_media:
            raise RequestRejected(400, f"The audio in {where} could not be decoded as {mime_type}.")
        return seconds

    def _check_generation_config(self, config: dict, model: str) -> None:
        mime = config.get("responseMimeType")
        if mime not in (None, "text/plain", "application/json", "text/x.enum"):
            raise RequestRejected(400, "* GenerateContentRequest.generation_config.response_mime_type: allowed mimetypes are `text/plain`, `application/json`, `application/xml`, `application/yaml` and `text/x.enum`.\n")
        has_schema = "responseSchema" in config or "responseJsonSchema" in config
        if "responseSchema" in config and "responseJsonSchema" in config:
            raise RequestRejected(400, "response_schema and response_json_schema cannot both be set.")
        if has_schema and mime not in ("application/json", "text/x.enum"):
            raise RequestRejected(400, "* GenerateContentRequest.generation_config.response_mime_type: response_mime_type must be application/json or text/x.enum when a response schema is set.\n")
        limit = config.get("maxOutputTokens")
        if limit is not None and not (isinstance(limit, int) and 1 <= limit <= MAX_OUTPUT_TOKENS):
            raise RequestRejected(400, f"The value of max_output_tokens ({limit}) must be between 1 and {MAX_OUTPUT_TOKENS}.")
        thinking = config.get("thinkingConfig") or {}
        budget, level = thinking.get("thinkingBudget"), thinking.get("thinkingLevel")
        if budget is not None and not (isinstance(budget, int) and budget >= -1):
            raise RequestRejected(400, f"Invalid thinking_budget {budget}.")
        if level is not None:
            if level not in THINKING_LEVELS:
                raise RequestRejected(400, f"Invalid value at 'generation_config.thinking_config.thinking_level' (type.googleapis.com/google.ai.generativelanguage.v1beta.ThinkingConfig.ThinkingLevel), \"{level}\"")
            if budget is not None:
                raise RequestRejected(400, "thinking_budget and thinking_level cannot both be set.")
            if re.match(r"(models/)?gemini-[12][.-]", model):
                raise RequestRejected(400, "Thinking level is not supported for this model.")
            if level.lower() not in thinking_levels(model):
                raise RequestRejected(400, f"Thinking level {level} is not supported for this model.")
        if "responseSchema" in config:
            _check_openapi_schema(config["responseSchema"], "generation_config.response_schema")
        if "responseJsonSchema" in config:
            _check_json_schema_types(config["responseJsonSchema"], "generation_config.response_json_schema")
        resolution = config.get("mediaResolution")
        if resolution is not None and resolution not in MEDIA_RESOLUTIONS:
            raise RequestRejected(400, f"Invalid value at 'generation_config.media_resolution', \"{resolution}\"")

    def _prompt_usage(self, request: dict, media_seconds: list[float | None]) -> dict:
        texts = [
            part.get("text") or ""
            for content in [*request.get("contents", []), request.get("systemInstruction") or {"parts": []}]
            for part in content.get("parts", [])
        ]
        media_parts = [
            part for content in request.get("contents", []) for part in content.get("parts", []) if "inlineData" in part or "fileData" in part
        ]
        video = sum(math.ceil(seconds * VIDEO_TOKENS_PER_SECOND_DEFAULT) for part, seconds in zip(media_parts, media_seconds) if seconds and _is_video_url(part))
        audio = sum(math.ceil(seconds * AUDIO_TOKENS_PER_SECOND) for part, seconds in zip(media_parts, media_seconds) if seconds and not _is_video_url(part))
        text = sum(_text_tokens(t) for t in texts)
        details = [{"modality": "TEXT", "tokenCount": text}]
        if audio:
            details.append({"modality": "AUDIO", "tokenCount": audio})
        if video:
            details.append({"modality": "VIDEO", "tokenCount": video})
        usage = {"promptTokenCount": text + audio + video, "promptTokensDetails": details}
        if request.get("cachedContent"):
            cached = self._live_cache(request["cachedContent"]).tokens
            usage["promptTokenCount"] += cached
            usage["cachedContentTokenCount"] = cached
        return usage

    # -- cachedContents ---------------------------------------------------------------------------

    def expire_cache(self, name: str) -> None:
        """Make a cached content's TTL run out now."""
        with self._lock:
            self._caches[name].expires = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)

    @property
    def cache_names(self) -> list[str]:
        """Names (``cachedContents/...``) of the caches still alive."""
        now = dt.datetime.now(dt.timezone.utc)
        with self._lock:
            return [name for name, cache in self._caches.items() if cache.expires > now]

    def _live_cache(self, name: str) -> "_Cache":
        with self._lock:
            cache = self._caches.get(name)
            if cache is not None and cache.expires <= dt.datetime.now(dt.timezone.utc):
                del self._caches[name]  # Google deletes a cache when its TTL is over
                cache = None
        if cache is None:
            raise RequestRejected(403, f"CachedContent not found (or permission denied): {name}")
        return cache

    def _handle_caches(self, endpoint: str, target: str | None, version: str | None, raw: bytes) -> dict:
        if endpoint == "caches.create":
            return self._create_cache(raw, version)
        if endpoint == "caches.list":
            return {"cachedContents": [self._live_cache(name).as_json() for name in self.cache_names]}
        cache = self._live_cache(target)
        if endpoint == "caches.get":
            return cache.as_json()
        with self._lock:
            self._caches.pop(target, None)
        return {}

    def _create_cache(self, raw: bytes, version: str | None) -> dict:
        body = _canonical(_json_body(raw), _CACHED_CONTENT, "")
        model = str(body.get("model") or "")
        if not model:
            raise RequestRejected(400, "* CreateCachedContentRequest.cached_content.model: model is required.\n")
        self._check_model(model, version, "createCachedContent")
        media = self._resolve_media(body.get("contents") or [], "cached_content.contents")
        tokens = self._prompt_usage({"contents": body["contents"], "systemInstruction": body.get("systemInstruction")}, media)["promptTokenCount"]
        if tokens < CACHE_MIN_TOKENS:
            raise RequestRejected(400, f"Cached content is too small. total_token_count={tokens}, min_total_token_count={CACHE_MIN_TOKENS}")
        ttl = body.get("ttl") or "3600s"  # "If not set, the TTL defaults to 1 hour" (https://ai.google.dev/gemini-api/docs/caching)
        if not (isinstance(ttl, str) and _DURATION.fullmatch(ttl)):
            raise RequestRejected(400, f"Invalid value at 'cached_content.ttl' (type.googleapis.com/google.protobuf.Duration), {ttl!r}")
        now = dt.datetime.now(dt.timezone.utc)
        with self._lock:
            name = f"cachedContents/{next(self._ids):04d}{uuid.uuid4().hex[:8]}"
            cache = _Cache(name, f"models/{model.removeprefix('models/')}", tokens, now, now + dt.timedelta(seconds=float(ttl[:-1])), body.get("displayName"))
            self._caches[name] = cache
        return cache.as_json()

    def _next_scripted(self, endpoint: str) -> Scripted | None:
        with self._lock:
            queue = self._scripts[endpoint]
            return queue.popleft() if queue else None

    def _generate_content(self, model: str, raw: bytes, handler: _Handler, version: str | None):
        request = self._parse_model_request(model, raw, _GENERATE_CONTENT_REQUEST, version, "generateContent")
        media = self._check_generate_request(request, model)
        if self.transcribe.claims(model, request, media):
            return 200, self.transcribe.answer(model, ModelRequest(request, tuple(media)), handler), {}
        response = self._scripted_generate(ModelRequest(request, tuple(media)))
        _wait_or_fail(response, handler)
        if isinstance(response, (BlockedPrompt, SafetyStop)):
            return 200, self._blocked_answer(model, request, media, response), {}
        answer = response.as_text() if isinstance(response, Answer) else response
        return 200, self._model_answer(model, request, media, answer, request.get("generationConfig") or {}), {}

    def _model_answer(self, model: str, request: dict, media_seconds: list[float | None], answer: RawText, config: dict) -> dict:
        text, finish_reason = answer.text, answer.finish_reason
        limit = config.get("maxOutputTokens")
        if limit is not None and _text_tokens(text) + answer.thoughts_tokens > limit:
            # What the real service does when the answer does not fit: cut it and say so.
            text = text[: max(0, limit - answer.thoughts_tokens) * CHARS_PER_TEXT_TOKEN]
            finish_reason = "MAX_TOKENS"
        usage = dict(answer.usage) if answer.usage is not None else self._prompt_usage(request, media_seconds)
        if answer.usage is None:
            usage["candidatesTokenCount"] = _text_tokens(text)
            if answer.thoughts_tokens:
                usage["thoughtsTokenCount"] = answer.thoughts_tokens
            usage["totalTokenCount"] = usage["promptTokenCount"] + usage["candidatesTokenCount"] + answer.thoughts_tokens
        return {
            "candidates": [{"content": {"parts": [{"text": text}], "role": "model"}, "finishReason": finish_reason, "index": 0}],
            "usageMetadata": usage,
            "modelVersion": model.removeprefix("models/"),
            "responseId": uuid.uuid4().hex[:22],
        }

    def _blocked_answer(self, model: str, request: dict, media: list[float | None], response: "BlockedPrompt | SafetyStop") -> dict:
        """What Gemini answers when a filter blocks the prompt, or stops the answer: billed input, no text."""
        usage = self._prompt_usage(request, media)
        usage["totalTokenCount"] = usage["promptTokenCount"]
        answer: dict = {"usageMetadata": usage, "modelVersion": model.removeprefix("models/"), "responseId": uuid.uuid4().hex[:22]}
        if isinstance(response, BlockedPrompt):
            answer["promptFeedback"] = {"blockReason": response.reason, "safetyRatings": [
                {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}]}
        else:
            answer["candidates"] = [{"finishReason": response.reason, "index": 0, "safetyRatings": [
                {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}]}]
        return answer

    def _count_tokens(self, model: str, raw: bytes, handler: _Handler, version: str | None):
        request = self._parse_model_request(model, raw, _COUNT_TOKENS_REQUEST, version, "countTokens")
        scripted = self._next_scripted("countTokens")
        if scripted is not None:
            _wait_or_fail(scripted, handler)
        inner = request.get("generateContentRequest") or request
        media = self._resolve_media(inner.get("contents") or [], "contents")
        usage = self._prompt_usage(inner, media)
        return 200, {"totalTokens": usage["promptTokenCount"], "promptTokensDetails": usage["promptTokensDetails"]}, {}

    # -- answers to generateContent bodies, direct or inlined in a batch --------------------------

    def script_for(self, match: Callable[["ModelRequest"], bool], *responses: Scripted) -> "FakeGemini":
        """Queue answers for the ``generateContent`` requests (direct or inlined in a batch) that
        ``match`` accepts; they are used before the :meth:`script` queue, in order.

        For requests that arrive in no fixed order, e.g. one per input of a concurrent run::

            server.script_for(lambda request: request.audio_seconds == (2.0,), Answer(...))
        """
        for response in responses:
            if not isinstance(response, _GENERATE_SCRIPTS):
                raise TypeError(f"cannot script {type(response).__name__} for generateContent")
        with self._lock:
            self._keyed_scripts.append((match, collections.deque(responses)))
        return self

    def _check_generate_request(self, request: dict, model: str) -> list[float | None]:
        """Check a parsed generateContent body beyond its field names; the seconds of each media part."""
        if request.get("cachedContent"):
            cache = self._live_cache(request["cachedContent"])
            if cache.model != f"models/{model.removeprefix('models/')}":
                raise RequestRejected(400, f"Model used by GenerateContent request (models/{model.removeprefix('models/')}) and CachedContent ({cache.model}) has to be the same.")
            if request.get("systemInstruction") or request.get("tools") or request.get("toolConfig"):
                raise RequestRejected(400, "CachedContent can not be used with GenerateContent request setting system_instruction, tools or tool_config.")
        media = self._resolve_media(request.get("contents") or [], "contents")
        if request.get("systemInstruction"):
            self._resolve_media([request["systemInstruction"]], "system_instruction")
        self._check_generation_config(request.get("generationConfig") or {}, model)
        return media

    def _scripted_generate(self, request: "ModelRequest") -> Scripted:
        """The answer to a checked request: a matching keyed script, else the queue, else the default."""
        with self._lock:
            keyed = list(self._keyed_scripts)
        for match, queue in keyed:
            if queue and match(request):  # the test's predicate runs outside the lock
                with self._lock:
                    if queue:
                        return queue.popleft()
        response = self._next_scripted("generateContent") or self.default_response
        if response is None:
            raise RequestRejected(501, "FakeGemini has no scripted response left for generateContent; queue one with server.script(...).")
        return response

    # -- Batch API ------------------------------------------------------------------------------

    def _init_batches(self) -> None:
        #: Lifecycle of a batch job when none is queued with :meth:`script_batches`.
        self.default_batch_lifecycle = BatchLifecycle()
        self._batch_lifecycles: collections.deque[BatchLifecycle] = collections.deque()
        self._batches: dict[str, _BatchJob] = {}
        self._keyed_scripts: list[tuple[Callable[[ModelRequest], bool], collections.deque]] = []

    def script_batches(self, *lifecycles: "BatchLifecycle") -> "FakeGemini":
        """Queue the lifecycles of the next batch jobs, in creation order."""
        with self._lock:
            self._batch_lifecycles.extend(lifecycles)
        return self

    @property
    def batch_names(self) -> list[str]:
        """Names (``batches/...``) of the batch jobs currently held, in creation order."""
        with self._lock:
            return list(self._batches)

    def batch_state(self, name: str) -> str:
        """A job's state as the next ``batches.get`` will report it, e.g. ``BATCH_STATE_RUNNING``."""
        with self._lock:
            return self._batches[name].state

    def _handle_batches(self, endpoint: str, target: str | None, version: str | None, query: Mapping[str, str], raw: bytes):
        if endpoint == "batches.create":
            return 200, self._create_batch(target, raw, version), {}
        if endpoint == "batches.list":
            return 200, self._list_batches(query), {}
        with self._lock:
            job = self._batches.get(target)
            if job is None:
                raise RequestRejected(404, "Requested entity was not found.")
            if endpoint == "batches.get":
                answer = job.operation()
                job.polls += 1
                return 200, answer, {}
            if endpoint == "batches.cancel":
                job.cancelled = job.cancelled or not job.done  # a finished job stays as it ended
                return 200, {}, {}
            del self._batches[target]  # batches.delete: the results are gone, the job is not cancelled
            return 200, {}, {}

    def _create_batch(self, model: str, raw: bytes, version: str | None) -> dict:
        # A batch job is one request body, and batch requests keep the 20 MB limit.
        body = self._parse_model_request(model, raw, _BATCH_CREATE_REQUEST, version, "batchGenerateContent", BATCH_REQUEST_LIMIT_BYTES)
        batch = body.get("batch") or {}
        source = batch.get("inputConfig") or {}
        if "fileName" in source:
            raise RequestRejected(501, "FakeGemini implements batches of inlined requests only, not input from a JSONL file.")
        inlined = (source.get("requests") or {}).get("requests") or []
        if not inlined:
            raise RequestRejected(400, "* BatchGenerateContentRequest.batch.input_config.requests: requests must not be empty.\n")
        # Answered at once, so scripts are used in the order of the inlined requests; the answers
        # show only once polls have taken the job to SUCCEEDED.
        outputs = [self._batch_item(model, item) for item in inlined]
        with self._lock:
            name = f"batches/{next(self._ids):04d}{uuid.uuid4().hex[:8]}"
            lifecycle = self._batch_lifecycles.popleft() if self._batch_lifecycles else self.default_batch_lifecycle
            job = _BatchJob(name, f"models/{model}", batch.get("displayName"), outputs, lifecycle, dt.datetime.now(dt.timezone.utc))
            self._batches[name] = job
            return job.operation()

    def _batch_item(self, model: str, item: dict) -> dict:
        """One entry of the job's output: the inlined request's answer or its error (a google.rpc.Status)."""
        request = item.get("request") or {}
        entry = {"metadata": item["metadata"]} if item.get("metadata") else {}
        try:
            media = self._check_generate_request(request, model)
            response = self._scripted_generate(ModelRequest(request, tuple(media)))
        except RequestRejected as rejected:
            return {**entry, "error": _rpc_status(rejected)}
        if isinstance(response, HttpError):
            return {**entry, "error": _rpc_status(_scripted_error(response))}
        if isinstance(response, Disconnect):  # there is no connection to drop inside a job
            return {**entry, "error": _rpc_status(RequestRejected(500, "Internal error encountered."))}
        if isinstance(response, (BlockedPrompt, SafetyStop)):
            return {**entry, "response": self._blocked_answer(request.get("model") or f"models/{model}", request, media, response)}
        answer = response.as_text() if isinstance(response, Answer) else response
        config = request.get("generationConfig") or {}
        return {**entry, "response": self._model_answer(request.get("model") or f"models/{model}", request, media, answer, config)}

    def _list_batches(self, query: Mapping[str, str]) -> dict:
        page_size = min(int(query.get("pageSize") or 10), 100)
        start = int(query.get("pageToken") or 0)
        with self._lock:
            jobs = list(self._batches.values())
            page = [job.operation() for job in jobs[start : start + page_size]]
        answer: dict = {"operations": page} if page else {}
        if start + page_size < len(jobs):
            answer["nextPageToken"] = str(start + page_size)
        return answer


class _Disconnected(Exception):
    """Raised to drop the connection without an answer."""


def _wait_or_fail(response: Scripted, handler: _Handler) -> None:
    """Apply a scripted response's delay, then raise if it is an error or a disconnect."""
    if response.delay:
        time.sleep(response.delay)
    if isinstance(response, Disconnect):
        # shutdown, not close: the handler's file objects keep the socket open until they go.
        handler.connection.shutdown(socket.SHUT_RDWR)
        raise _Disconnected
    if isinstance(response, HttpError):
        raise _scripted_error(response)


def _scripted_error(error: HttpError) -> RequestRejected:
    details = []
    if error.retry_delay is not None:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{error.retry_delay:g}s"})
    headers = {"Retry-After": f"{error.retry_after:g}"} if error.retry_after is not None else {}
    message = error.message or _DEFAULT_MESSAGES.get(error.status, "Error.")
    return RequestRejected(error.status, message, error.grpc_status, details, headers)


def _envelope(code: int, message: str, status: str, details: list) -> dict:
    error: dict = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return {"error": error}


def _is_video_url(part: dict) -> bool:
    """A YouTube link: Gemini looks at its frames too (media resolution does not change the
    count here: the real per-resolution rates are not modelled)."""
    host = urlsplit((part.get("fileData") or {}).get("fileUri") or "").hostname or ""
    return host in ("youtube.com", "www.youtube.com", "m.youtube.com", "youtu.be")


def _clipped(seconds: float | None, metadata: dict | None, where: str) -> float | None:
    """The seconds of a media part once ``videoMetadata`` has cut it."""
    if not metadata:
        return seconds
    offsets = []
    for key in ("startOffset", "endOffset"):
        value = metadata.get(key)
        if value is not None and not (isinstance(value, str) and _DURATION.fullmatch(value)):
            raise RequestRejected(400, f"Invalid value at '{where}.{_snake(key)}' (type.googleapis.com/google.protobuf.Duration), Field '{_snake(key)}', Illegal duration format; duration must end with 's'")
        offsets.append(None if value is None else float(value[:-1]))
    start, end = offsets[0] or 0.0, offsets[1]
    if end is not None and end <= start:
        raise RequestRejected(400, f"{where}: end_offset must be after start_offset.")
    if seconds is None:
        return None
    return max(0.0, min(seconds, end if end is not None else seconds) - start)


def _model_json(name: str) -> dict:
    """A models.get / models.list entry in the shape Google gives: the Model resource's fields
    (https://ai.google.dev/api/models; ``supportedGenerationMethods`` is what google-genai reads
    into ``Model.supported_actions``, ``thinking`` says the model thinks). The figures are Gemini
    Flash's documented context window and output limit."""
    bare = name.removeprefix("models/")
    return {
        "name": f"models/{bare}", "baseModelId": bare, "version": bare.removeprefix("gemini-"), "displayName": bare.replace("-", " ").title(),
        "inputTokenLimit": 1048576, "outputTokenLimit": MAX_OUTPUT_TOKENS,
        "supportedGenerationMethods": ["generateContent", "countTokens", "createCachedContent", "batchGenerateContent"],
        "temperature": 1, "maxTemperature": 2, "topP": 0.95, "topK": 64, "thinking": True,
    }


def _file_not_found(name: str) -> RequestRejected:
    # Google answers 403, not 404, for files that are gone or belong to someone else.
    return RequestRejected(403, f"You do not have permission to access the File {name.removeprefix('files/')} or it may not exist.")


def _accepted_mime(mime_type: Any, where: str) -> str:
    if not isinstance(mime_type, str) or mime_type.split(";")[0].strip().lower() not in ACCEPTED_MIME_TYPES:
        raise RequestRejected(400, f"Unsupported MIME type: {mime_type} ({where}.mime_type)")
    return mime_type.split(";")[0].strip().lower()


def _json_body(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        raise RequestRejected(400, "Invalid JSON payload received. Unexpected token.") from None


# ---------------------------------------------------------------------------------------------
# Batch API: scripting, jobs, routes
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelRequest:
    """A checked ``generateContent`` body as :meth:`FakeGemini.script_for` predicates see it.

    ``body`` has lowerCamel field names; ``audio_seconds`` has one entry per media part (None when
    its length is unknown, e.g. a public URL).
    """

    body: Mapping[str, Any]
    audio_seconds: tuple[float | None, ...]


@dataclass(frozen=True)
class BatchLifecycle:
    """How a batch job behaves: ``batches.get`` reports PENDING ``pending_polls`` times, then
    RUNNING ``running_polls`` times, then ``outcome`` (FAILED and EXPIRED carry ``error_message``)."""

    pending_polls: int = 1
    running_polls: int = 1
    outcome: Literal["SUCCEEDED", "FAILED", "EXPIRED"] = "SUCCEEDED"
    error_message: str = "The batch job failed."


#: google.rpc.Code numbers, for the google.rpc.Status of a failed inlined request or job.
_RPC_CODES = {
    "CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4, "NOT_FOUND": 5,
    "ALREADY_EXISTS": 6, "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8, "FAILED_PRECONDITION": 9,
    "UNIMPLEMENTED": 12, "INTERNAL": 13, "UNAVAILABLE": 14, "UNAUTHENTICATED": 16,
}
_INLINED_REQUEST = {"request": _GENERATE_CONTENT_REQUEST, "metadata": ANY}
_BATCH_CREATE_REQUEST = {
    "batch": {
        "name": ANY, "displayName": ANY, "priority": ANY, "webhookConfig": ANY,
        "inputConfig": {"requests": {"requests": [_INLINED_REQUEST]}, "fileName": ANY},
    }
}
_BATCH_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"


def _rpc_status(rejected: RequestRejected) -> dict:
    return {"code": _RPC_CODES.get(rejected.grpc_status, 2), "message": rejected.message}


@dataclass
class _BatchJob:
    name: str
    model: str
    display_name: str | None
    outputs: list[dict]
    lifecycle: BatchLifecycle
    created: dt.datetime
    polls: int = 0
    cancelled: bool = False

    @property
    def state(self) -> str:
        if self.cancelled:
            return "BATCH_STATE_CANCELLED"
        if self.polls < self.lifecycle.pending_polls:
            return "BATCH_STATE_PENDING"
        if self.polls < self.lifecycle.pending_polls + self.lifecycle.running_polls:
            return "BATCH_STATE_RUNNING"
        return f"BATCH_STATE_{self.lifecycle.outcome}"

    @property
    def done(self) -> bool:
        return self.state not in ("BATCH_STATE_PENDING", "BATCH_STATE_RUNNING")

    def operation(self) -> dict:
        """The job as a long-running operation, the shape ``batches.get`` and create answer with."""
        state, count = self.state, len(self.outputs)
        failed = sum("error" in output for output in self.outputs)
        stats = {"requestCount": str(count)}  # int64 travels as a string in proto JSON
        stats.update(
            {"successfulRequestCount": str(count - failed), "failedRequestCount": str(failed)}
            if state == "BATCH_STATE_SUCCEEDED" else {"pendingRequestCount": str(count)}
        )
        metadata = {
            "@type": _BATCH_TYPE, "name": self.name, "model": self.model, "createTime": _rfc3339(self.created),
            "updateTime": _rfc3339(self.created), "batchStats": stats, "state": state,
        }
        if self.display_name:
            metadata["displayName"] = self.display_name
        operation: dict = {"name": self.name, "metadata": metadata}
        if state == "BATCH_STATE_SUCCEEDED":
            metadata["output"] = {"inlinedResponses": {"inlinedResponses": self.outputs}}
        if self.done:
            operation["done"] = True
        if state in ("BATCH_STATE_FAILED", "BATCH_STATE_EXPIRED"):
            operation["error"] = {"code": _RPC_CODES["INTERNAL"], "message": self.lifecycle.error_message}
        elif state == "BATCH_STATE_CANCELLED":
            operation["error"] = {"code": _RPC_CODES["CANCELLED"], "message": "The batch was cancelled."}
        return operation


def _route_batches(method: str, path: str) -> tuple[str, str | None, str | None] | None:
    """``(endpoint, api version, target)`` for the Batch API's paths, else None."""
    match = re.fullmatch(rf"/{_VERSION}/models/([^/:]+):batchGenerateContent", path)
    if match and method == "POST":
        return "batches.create", match.group(1), match.group(2)
    match = re.fullmatch(rf"/{_VERSION}/batches", path)
    if match and method == "GET":
        return "batches.list", match.group(1), None
    match = re.fullmatch(rf"/{_VERSION}/batches/([a-z0-9-]+)(:cancel)?", path)
    if match:
        version, batch_id, cancel = match.groups()
        endpoint = {("POST", True): "batches.cancel", ("GET", False): "batches.get", ("DELETE", False): "batches.delete"}.get((method, bool(cancel)))
        if endpoint:
            return endpoint, version, f"batches/{batch_id}"
    return None
