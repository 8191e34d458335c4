"""Several questions about one recording at low cost: the audio is uploaded once and, when it is
long enough for Gemini's context caching, cached once with a TTL, so every question is billed
the cached (cheaper) rate for the audio instead of the full one.

Each answer cites the moments it rests on as MM:SS; they are read onto the audio's timeline the
way transcript timestamps are (``runpipe.timecode.parse_clock``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Sequence

from google.genai import types

from runpipe.errors import BackendError
from runpipe.model import AudioFile
from runpipe.timecode import parse_clock

from .backend import GeminiBackend
from .limits import CACHE_MIN_TOKENS
from .request import thinking_config

log = logging.getLogger("runpipe.plugins.gemini")

#: How long a cache lives: long enough for the questions of one command, short enough that a
#: forgotten cache costs little storage (it is deleted when the questions are done anyway).
CACHE_TTL_SECONDS = 600
ANSWER_SCHEMA = {
    "type": "object",
    "properties": {
        "answer": {"type": "string", "description": "The answer to the question, from the audio."},
        "moments": {
            "type": "array",
            "description": "The moments the answer rests on.",
            "items": {
                "type": "object",
                "properties": {
                    "timestamp": {"type": "string", "description": "When, as MM:SS (H:MM:SS past an hour)."},
                    "quote": {"type": "string", "description": "What is said or heard there, briefly."},
                },
                "required": ["timestamp", "quote"],
            },
        },
    },
    "required": ["answer", "moments"],
}
INSTRUCTION = (
    "Answer the question about the audio above from what is said and heard in it. Cite the moments "
    "your answer rests on with their timestamps (MM:SS from the start of the audio). If the audio "
    "does not answer the question, say so."
)


@dataclass(frozen=True)
class Moment:
    start: float | None  # seconds on the audio's timeline (None: the timestamp could not be read)
    timestamp: str
    quote: str


@dataclass(frozen=True)
class AnswerToQuestion:
    question: str
    answer: str
    moments: tuple[Moment, ...]
    prompt_tokens: int | None
    cached_tokens: int | None


@dataclass(frozen=True)
class Answers:
    answers: tuple[AnswerToQuestion, ...]
    model: str
    cache: str | None  # the cachedContents name used, None when the audio was too short to cache
    audio_tokens: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "cache": self.cache, "audio_tokens": self.audio_tokens,
            "answers": [
                {"question": a.question, "answer": a.answer, "prompt_tokens": a.prompt_tokens, "cached_tokens": a.cached_tokens,
                 "moments": [{"start": m.start, "timestamp": m.timestamp, "quote": m.quote} for m in a.moments]}
                for a in self.answers
            ],
        }


def ask(backend: GeminiBackend, audio: AudioFile, questions: Sequence[str], *, model: str | None = None) -> Answers:
    """Answer ``questions`` about ``audio``: one upload, one cache when the audio is long enough."""
    session = backend._ready()
    client = session.client
    model = model or backend.settings.model
    session.catalog.require(model)
    # inline_limit 0: uploaded once (or a URL as it is), so every question and the cache refer to it
    media = session.stager.stage(audio, None, other_bytes=0, inline_limit=0)
    name = audio.source.name
    counted, _ = client.call(
        f"counting the tokens of {name}",
        lambda: client.sdk.models.count_tokens(model=model, contents=[types.Content(role="user", parts=[media.part])]), model=model,
    )
    audio_tokens = counted.total_tokens or 0
    cache = None
    if audio_tokens >= CACHE_MIN_TOKENS:
        created, _ = client.call(
            f"caching {name}",
            lambda: client.sdk.caches.create(model=model, config=types.CreateCachedContentConfig(
                contents=[types.Content(role="user", parts=[media.part])], ttl=f"{CACHE_TTL_SECONDS}s", display_name=f"runpipe ask {name}"[:128],
            )),
            model=model,
        )
        cache = created.name
    else:
        log.info("%s: %d tokens, below the %d that context caching needs; asking without a cache", name, audio_tokens, CACHE_MIN_TOKENS)
    try:
        answers = tuple(_one(backend, media.part, cache, model, question, name) for question in questions)
    finally:
        if cache is not None:
            client.call(f"deleting the cache of {name}", lambda: client.sdk.caches.delete(name=cache), model=model)
    return Answers(answers, model, cache, audio_tokens)


def _one(backend: GeminiBackend, media: types.Part, cache: str | None, model: str, question: str, name: str) -> AnswerToQuestion:
    client = backend._ready().client
    text = types.Part(text=f"{INSTRUCTION}\n\nQuestion: {question}")
    parts = [text] if cache else [media, text]
    config = types.GenerateContentConfig(
        cached_content=cache, response_mime_type="application/json", response_json_schema=ANSWER_SCHEMA,
        thinking_config=thinking_config(model, {"thinking": backend.settings.thinking, "thinking_budget": backend.settings.thinking_budget}),
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )
    response, _ = client.call(
        f"asking about {name}",
        lambda: client.sdk.models.generate_content(model=model, contents=[types.Content(role="user", parts=parts)], config=config),
        model=model,
    )
    try:
        data = json.loads(response.text or "")
        moments = tuple(Moment(_seconds(m["timestamp"]), m["timestamp"], m["quote"]) for m in data["moments"])
        answer = str(data["answer"])
    except (ValueError, KeyError, TypeError) as error:
        raise BackendError(f"asking about {name}: Gemini's answer to {question!r} is not the JSON asked for ({error})") from error
    usage = response.usage_metadata
    return AnswerToQuestion(question, answer, moments, usage and usage.prompt_token_count, usage and usage.cached_content_token_count)


def _seconds(timestamp: str) -> float | None:
    try:
        return parse_clock(timestamp)
    except ValueError:
        return None
