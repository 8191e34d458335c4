"""Questions at low cost: a task's ``questions`` (``runpipe ask``, or ``questions:`` in a pipeline)
are asked one by one about one upload of the audio and, when it is long enough for Gemini's
context caching, against one cache with a TTL, so every question is billed the cached (cheaper)
rate for the audio instead of the full one. Each request goes through the backend's usual
judge-and-repair loop (a blocked question fails once, a broken answer gets a bounded repair).

Each answer cites the moments it rests on as MM:SS. Like transcript segments, they are moved
onto the speech actually heard in the audio by the re-timing step's aligner
(:func:`runpipe.plugins.retime.step.hear`, :func:`runpipe.plugins.retime.align.retime_segments`)
and say how their time was obtained (``timing``, the segments' vocabulary).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from google.genai import types

from runpipe.model import Analysis, AudioFile, Segment, Task, Usage
from runpipe.timecode import format_clock, parse_clock

from .limits import CACHE_MIN_TOKENS
from .media import StagedMedia
from .request import first_turn, generation_settings

if TYPE_CHECKING:
    from .backend import GeminiBackend, _Session
    from .settings import GeminiSettings

log = logging.getLogger("runpipe.plugins.gemini")

#: The task option that holds the questions (``runpipe.tasks`` puts a pipeline's there).
QUESTIONS = "questions"
#: How long a cache lives: long enough for the questions of one input, short enough that a
#: forgotten cache costs little storage (it is deleted when the questions are done anyway). The
#: API takes it as a protobuf Duration string, seconds ending in "s" (cachedContents ``ttl``).
CACHE_TTL_SECONDS = 600


def question_schema(answers_schema: Mapping[str, Any]) -> dict[str, Any]:
    """What one question's request asks for: the answer and its moments, as the task's schema
    (``answers``) describes one entry; the rest of an entry is filled in here, not by the model."""
    entry = answers_schema["properties"]["answers"]["items"]["properties"]
    moment = entry["moments"]["items"]["properties"]
    return {
        "type": "object",
        "properties": {
            "answer": entry["answer"],
            "moments": {**entry["moments"], "items": {
                "type": "object", "properties": {k: moment[k] for k in ("timestamp", "quote")}, "required": ["timestamp", "quote"],
            }},
        },
        "required": ["answer", "moments"],
    }


@dataclass(frozen=True)
class Moment:
    timestamp: str  # MM:SS of ``start`` (as the model gave it until the moment is re-timed)
    quote: str
    start: float | None  # seconds on the input's timeline; None: the timestamp could not be read
    timing: str = "model"  # how ``start`` was obtained (runpipe.model.Timing)
    original_timestamp: str | None = None  # what the model said, when re-timing moved it

    def as_dict(self) -> dict[str, Any]:
        moment = {"timestamp": self.timestamp, "quote": self.quote, "start": self.start, "timing": self.timing}
        return {**moment, "original_timestamp": self.original_timestamp} if self.original_timestamp else moment


def answer_questions(backend: "GeminiBackend", session: "_Session", audio: AudioFile, task: Task,
                     settings: "GeminiSettings", model: str) -> Analysis:
    """The answers to ``task``'s questions about the whole of ``audio``, as one Analysis."""
    client = session.client
    name = audio.source.name
    # inline_limit 0: uploaded once (or a URL as it is), so every question and the cache refer to it
    media = session.stager.stage(audio, None, other_bytes=0, inline_limit=0)
    counted, _ = client.call(
        f"counting the tokens of {name}",
        lambda: client.sdk.models.count_tokens(model=model, contents=[types.Content(role="user", parts=[media.part])]), model=model,
    )
    audio_tokens = counted.total_tokens or 0
    cache = _create_cache(session, media, task, model, name) if audio_tokens >= CACHE_MIN_TOKENS else None
    if cache is None:
        log.info("%s: %d tokens, below the %d that context caching needs; asking without a cache", name, audio_tokens, CACHE_MIN_TOKENS)
    generation = {**generation_settings(task, settings), "media_resolution": settings.media_resolution if media.video else None}
    asked = dataclasses.replace(task, schema=question_schema(task.schema))
    entries, usage, cached_total, last = [], Usage(requests=2 if cache else 1), 0, None  # countTokens (+ the cache)
    try:
        for question in task.options[QUESTIONS]:
            prompt = f"{task.prompt}\n\nQuestion: {question}"
            contents = [types.Content(role="user", parts=[types.Part(text=prompt)])] if cache else first_turn(media.part, prompt)
            outcome = backend._answer(session, f"asking about {name}", model, asked, generation, contents, settings.repair_attempts,
                                      audio_tokens + len(prompt) // 4, cached_content=cache)
            usage, last = usage + outcome.usage, outcome
            cached = outcome.last_reply.cached_tokens
            cached_total += cached or 0
            entries.append((question, outcome.data, outcome.last_reply.usage.prompt_tokens, cached))
    finally:
        if cache is not None:
            client.call(f"deleting the cache of {name}", lambda: client.sdk.caches.delete(name=cache), model=model)
    moments, note = place_moments(audio, [[_moment(m, media.offset) for m in data["moments"]] for _, data, _, _ in entries],
                                  enabled=settings.retime_moments)
    answers = [
        {"question": question, "answer": str(data["answer"]), "moments": [m.as_dict() for m in placed],
         "prompt_tokens": prompt_tokens, "cached_tokens": cached}
        for (question, data, prompt_tokens, cached), placed in zip(entries, moments)
    ]
    provenance = {"media": media.transport, "cache": cache, "cached_tokens": cached_total, "audio_tokens": audio_tokens,
                  "cache_ttl_seconds": CACHE_TTL_SECONDS if cache else None, "questions": len(answers)}
    if media.file_name:
        provenance["file_name"] = media.file_name
    if last is not None:
        provenance["model_version"] = last.last_reply.model_version
    return Analysis(task=task.name, data={"answers": answers}, backend=backend.name, model=model, usage=usage,
                    provenance=provenance, notes=(note,) if note else ())


def _create_cache(session: "_Session", media: StagedMedia, task: Task, model: str, name: str) -> str:
    client = session.client
    created, _ = client.call(
        f"caching {name}",
        lambda: client.sdk.caches.create(model=model, config=types.CreateCachedContentConfig(
            contents=[types.Content(role="user", parts=[media.part])], ttl=f"{CACHE_TTL_SECONDS}s",
            system_instruction=task.system_instruction or None, display_name=f"runpipe ask {name}"[:128],
        )),
        model=model,
    )
    return created.name


def _moment(item: Mapping[str, Any], offset: float) -> Moment:
    timestamp, quote = str(item["timestamp"]), str(item["quote"])
    try:
        start = round(parse_clock(timestamp) + offset, 3)
    except ValueError:
        start = None
    return Moment(timestamp, quote, start)


def place_moments(audio: AudioFile, moments: Sequence[Sequence[Moment]], *, enabled: bool = True) -> tuple[list[list[Moment]], str | None]:
    """``moments`` (per answer) moved onto the speech heard in ``audio``, and a note when they
    could not be (then they keep the model's times, marked ``approximate``)."""
    if not any(moments):
        return [list(m) for m in moments], None
    reason = None if enabled else "re-timing of answer moments is off (retime_moments: false)"
    if reason is None and audio.path is None:
        reason = "the input is a remote reference (URL), so there is no local audio to align against"
    if reason is None:
        from runpipe.plugins.local.models import missing_packages

        missing = missing_packages()
        reason = f"re-timing needs the offline models ({', '.join(missing)} missing; pip install 'runpipe[local]')" if missing else None
    if reason is not None:
        return [[dataclasses.replace(m, timing="approximate") for m in ms] for ms in moments], f"answer moments are the model's own times, approximate: {reason}"
    from runpipe.plugins.retime.step import hear

    heard = hear(audio)  # the retime step's default options
    duration = audio.duration or max((m.start or 0.0) for ms in moments for m in ms)
    return [align_moments(ms, heard.words, heard.regions, duration) for ms in moments], None


def align_moments(moments: Sequence[Moment], words, passages, duration: float) -> list[Moment]:
    """One answer's moments on the heard speech: each quote is a segment for the re-timing
    aligner, in the order of the model's times (the aligner keeps segments in spoken order)."""
    from runpipe.plugins.retime.align import retime_segments

    timed = sorted((i for i, m in enumerate(moments) if m.start is not None), key=lambda i: moments[i].start)
    placed = list(moments)
    if not timed:
        return placed
    segments = [Segment(start=moments[i].start, end=None, content=moments[i].quote) for i in timed]
    retimed, _ = retime_segments(segments, words, passages, duration)
    for i, segment in zip(timed, retimed):
        moved = segment.timing in ("aligned", "interpolated", "passage")
        placed[i] = dataclasses.replace(moments[i], start=segment.start, timing=segment.timing, **(
            {"timestamp": format_clock(segment.start), "original_timestamp": moments[i].timestamp} if moved else {}))
    return placed


def asks_questions(task: Task) -> bool:
    return bool(task.options.get(QUESTIONS))
