"""GeminiBackend: answers analysis tasks about audio with Gemini, through google-genai."""

from __future__ import annotations

import json
import logging
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Mapping

import jsonschema
from google.genai import types

from runpipe.chunking import stitch
from runpipe.errors import BackendUnavailable
from runpipe.interfaces import Backend, BackendLimits, Estimate
from runpipe.model import Analysis, AudioFile, Task, TimeRange, Usage
from runpipe.paths import user_dir
from runpipe.store import RunStore

from .ask import answer_questions, asks_questions
from .batch import BatchCollector, BatchRequest
from .client import GeminiClient
from .errors import GeminiAnswerError
from .limits import AUDIO_TOKENS_PER_SECOND, BATCH_REQUEST_LIMIT_BYTES, CACHE_MIN_TOKENS, VIDEO_TOKENS_PER_SECOND_DEFAULT
from .media import MediaStager, StagedMedia, is_youtube
from .models import ModelCatalog, ModelInfo
from .request import (
    check_thinking,
    enlarged_budget,
    first_turn,
    generation_config,
    generation_settings,
    inline_bytes,
    prompt_text,
    repair_turns,
    request_bytes_besides_media,
)
from .response import Reply, judge, read_reply, schema_validator
from .settings import GeminiSettings, find_api_key, missing_key_message
from .transcribe import TranscribedTimeline
from .upload_cache import UploadCache
from .uploads import Uploads

log = logging.getLogger("runpipe.plugins.gemini")

#: Seconds per request window when audio is chunked. A transcript costs about 20-30k output
#: tokens an hour (~500 a minute); 15 minutes is ~7.5k tokens, ~15k with a translation on every
#: segment, so half the default 32k answer budget is left for dense speech. Shorter windows also
#: keep Gemini's MM:SS timestamps from drifting, which grows with the length of the audio.
PREFERRED_CHUNK_SECONDS = 900.0
#: Windows of one long video asked for at once (as the engine does for the windows of audio).
VIDEO_WINDOW_PARALLELISM = 4


@dataclass(frozen=True)
class _Outcome:
    data: Any
    last_reply: Reply
    usage: Usage
    attempts: int
    transport_retries: int
    batch_job: str | None  # the batch job that gave the first answer, in batch mode


@dataclass(frozen=True)
class _Session:
    """What a warmed-up backend holds: the client, the upload machinery and, in batch mode, the
    collector of batch jobs built on it."""

    client: GeminiClient
    uploads: Uploads
    stager: MediaStager
    batch: BatchCollector | None
    catalog: ModelCatalog


class GeminiBackend(Backend):
    """Gemini through the official google-genai SDK: inline audio or Files API uploads, URLs as
    ``file_data``, JSON answers validated against the task's schema and repaired when broken.

    Thread-safe: the engine may call :meth:`analyze` from several threads; at most
    ``concurrency`` requests run at once, and a 429 makes every thread back off together. With
    ``batch``, each call waits for a batch job shared with the calls of the other threads.
    """

    name = "gemini"
    auto_rank = 20  # `backend: auto` prefers Gemini whenever a key is set
    accepts_urls = True
    limits = BackendLimits(max_audio_seconds=9.5 * 3600, preferred_chunk_seconds=PREFERRED_CHUNK_SECONDS)
    Options = GeminiSettings

    def __init__(self, options: Mapping[str, Any] | None = None):
        super().__init__(options)  # self.settings: every option's type and range checked
        self.settings.check(f"backend {self.name}")
        self._session: _Session | None = None
        self._session_lock = threading.Lock()
        self._validators: dict[str, jsonschema.protocols.Validator] = {}
        self._timeline = TranscribedTimeline(self.settings)

    @property
    def parallelism(self) -> int | None:
        """How many analyze calls the engine should keep in flight (None: its own concurrency).

        In batch mode every waiting call is one more request in the next job, so the engine's
        threads, not ``concurrency`` (which bounds HTTP requests), decide how full jobs get.
        """
        return self.settings.batch_max_requests if self.settings.batch else None

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return None if find_api_key(None) else missing_key_message(None)

    def warm_up(self) -> None:
        self._ready()

    def _ready(self) -> _Session:
        with self._session_lock:
            if self._session is None:
                found = find_api_key(self.settings.api_key_env)
                if found is None:
                    raise BackendUnavailable(missing_key_message(self.settings.api_key_env))
                key_env, key = found
                client = GeminiClient(self.settings, key_env=key_env, api_key=key)
                uploads = Uploads(client, UploadCache())
                batch = BatchCollector(client, RunStore(user_dir() / "runs.sqlite")) if self.settings.batch else None
                self._session = _Session(client, uploads, MediaStager(uploads), batch, ModelCatalog(client))
            return self._session

    def _validator(self, schema: Mapping[str, Any]) -> jsonschema.protocols.Validator:
        key = json.dumps(schema, sort_keys=True, default=dict)
        with self._session_lock:
            if key not in self._validators:
                self._validators[key] = schema_validator(json.loads(key))
            return self._validators[key]

    # -- models ---------------------------------------------------------------------------------

    def models(self) -> tuple[ModelInfo, ...]:
        """The models the key can use for audio analysis (one models.list request, cached)."""
        return self._ready().catalog.models()

    def window_limits(self, task: Task) -> BackendLimits:
        """A task of questions is answered over the whole recording (one upload, one cache): its
        answers are short, so the output limit that makes windows of transcripts safer does not apply."""
        return BackendLimits(max_audio_seconds=self.limits.max_audio_seconds) if asks_questions(task) else self.limits

    def check_task(self, task: Task) -> None:
        """Fail up front, in one line naming the alternatives, when the task's model is not one
        the key can use: a retired or misspelt model would otherwise fail every input."""
        settings = self.settings.for_task(task.name, task.options)
        model = task.model or settings.model
        check_thinking(model, generation_settings(task, settings)["thinking"], f"task {task.name}")
        self._ready().catalog.require(model)

    def _inline_limit(self, settings: GeminiSettings) -> int:
        # A batch job is one request body, and batch requests keep the 20 MB limit.
        return min(settings.inline_limit_bytes, BATCH_REQUEST_LIMIT_BYTES) if self.settings.batch else settings.inline_limit_bytes

    # -- analysis -------------------------------------------------------------------------------

    def analyze(self, audio: AudioFile, task: Task, *, window: TimeRange | None = None) -> Analysis:
        """Answer ``task`` about ``audio``, or about ``window`` of it.

        Local audio is cut to the window, so timestamps are on the window's timeline and
        ``offset`` is its start; so is a YouTube video (Gemini cuts it, by ``videoMetadata``).
        Other URLs cannot be cut: the range goes into the prompt, timestamps stay on the whole
        media's timeline and ``offset`` is 0. ``task.time_range`` is not read here: the engine
        turns it into windows (or slices the audio) before calling.

        A YouTube video too long for one answer (its length from countTokens) is asked for in
        windows and the answers are stitched, as the engine does for long audio.
        """
        session = self._ready()
        settings = self.settings.for_task(task.name, task.options)
        model = task.model or settings.model
        if asks_questions(task):
            return answer_questions(self, session, audio, task, settings, model)
        if window is None and audio.path is None and is_youtube(audio.source.uri):
            windows = self._video_windows(session, audio, model)
            if len(windows) > 1:
                with ThreadPoolExecutor(max_workers=min(len(windows), VIDEO_WINDOW_PARALLELISM)) as pool:
                    analyses = list(pool.map(lambda w: self.analyze(audio, task, window=w), windows))
                return stitch(analyses, windows)
        what = f"{task.name} on {audio.source.name}" + (f" ({window})" if window else "")
        # The prompt is longest when it names the range, so size the request with that prompt.
        other_bytes = request_bytes_besides_media(task, prompt_text(task, window))
        media = session.stager.stage(audio, window, other_bytes=other_bytes, inline_limit=self._inline_limit(settings))
        contents = first_turn(media.part, prompt_text(task, media.range_in_prompt, media.clip))
        generation = {**generation_settings(task, settings), "media_resolution": settings.media_resolution if media.video else None}
        seconds = (window.end - window.start) if window and window.end is not None else (audio.duration or 0.0)
        input_tokens = int(seconds * AUDIO_TOKENS_PER_SECOND) + len(prompt_text(task, window)) // 4
        outcome = self._answer(session, what, model, task, generation, contents, settings.repair_attempts, input_tokens)
        analysis = Analysis(
            task=task.name,
            data=outcome.data,
            backend=self.name,
            model=model,
            usage=outcome.usage,
            offset=media.offset,
            provenance=_provenance(outcome, media),
        )
        if self._timeline.applies(task):
            analysis = self._timeline.lay(analysis, client=session.client, stager=session.stager, audio=audio, media=media,
                                          window=window, task=task, what=what)
        return analysis

    def _video_windows(self, session: _Session, audio: AudioFile, model: str) -> list[TimeRange | None]:
        """Windows of about :data:`PREFERRED_CHUNK_SECONDS` covering a YouTube video, from its
        length as countTokens measures it (``[None]``: one request for all of it). The last
        window runs to the end, so a length measured short loses nothing."""
        contents = [types.Content(role="user", parts=[types.Part(file_data=types.FileData(file_uri=audio.source.uri))])]
        counted, _ = session.client.call(
            f"measuring the length of {audio.source.name}",
            lambda: session.client.sdk.models.count_tokens(model=model, contents=contents), model=model,
        )
        seconds = (counted.total_tokens or 0) / VIDEO_TOKENS_PER_SECOND_DEFAULT
        count = math.ceil(seconds / PREFERRED_CHUNK_SECONDS - 0.25) if seconds else 1  # a quarter over: still one
        if count <= 1:
            return [None]
        size = seconds / count
        return [TimeRange(i * size, None if i == count - 1 else (i + 1) * size) for i in range(count)]

    def _answer(
        self,
        session: _Session,
        what: str,
        model: str,
        task: Task,
        generation: Mapping[str, Any],
        contents: list[types.Content],
        repair_attempts: int,
        input_tokens: int = 0,
        *,
        cached_content: str | None = None,
    ) -> _Outcome:
        """Ask, judge the answer, and ask again with a repair request while attempts remain.

        In batch mode the first request goes into a batch job; repairs are asked directly: a
        repair is one request for one input, and another day-long wait would cost more than the
        batch discount saves. Requests that read a context cache are asked directly too: the cache
        lives minutes, a batch job up to a day.
        """
        client = session.client
        validator = self._validator(task.schema)
        answer_tokens = int(generation["max_output_tokens"])
        request, usage, retries, batch_job = contents, Usage(), 0, None
        for attempt in range(1, repair_attempts + 2):
            config = generation_config(task, generation, model=model, answer_tokens=answer_tokens, cached_content=cached_content)
            if attempt == 1 and session.batch is not None and cached_content is None:
                answer = session.batch.ask(BatchRequest.build(what, self.settings.endpoint, model, request, config))
                response, attempt_retries, batch_job = answer.response, 0, answer.job
            else:
                response, attempt_retries = client.call(
                    what, lambda: client.sdk.models.generate_content(model=model, contents=request, config=config), model=model,
                    tokens=input_tokens,
                )
            retries += attempt_retries
            reply = read_reply(response)
            usage += reply.usage
            verdict = judge(reply, validator)
            if verdict.ok:
                return _Outcome(verdict.data, reply, usage, attempt, retries, batch_job)
            if verdict.problem == "blocked":
                break  # the same request would be blocked again: one bill, not three
            log.warning("%s: answer %d of at most %d unusable: %s", what, attempt, repair_attempts + 1, client.redact(verdict.detail))
            if verdict.problem == "max_tokens":
                answer_tokens = enlarged_budget(answer_tokens, generation)
            request = repair_turns(contents, reply.text, verdict)
        why = verdict.detail if verdict.problem == "blocked" else (
            f"Gemini gave no usable answer in {attempt} attempt(s); the last one failed because {verdict.detail}"
        )
        raise GeminiAnswerError.of(
            client.redact(f"{what}: {why}"),
            problem=verdict.problem,
            raw=client.redact(reply.text),
        )

    def estimate(self, audio: AudioFile, task: Task) -> Estimate:
        """Audio tokens at Gemini's documented rate, and the request size that decides inline or upload."""
        settings = self.settings.for_task(task.name, task.options)
        other_bytes = request_bytes_besides_media(task, prompt_text(task, task.time_range))
        if audio.path is None:
            return Estimate(None, other_bytes, "file_data URL (not downloaded)")
        span = task.time_range or TimeRange(0.0, audio.duration)
        end = audio.duration if span.end is None or audio.duration is None else min(span.end, audio.duration)
        seconds = max(0.0, (end or 0.0) - span.start)
        share = seconds / audio.duration if audio.duration else 1.0  # a time range is sent cut out
        audio_tokens = int(round(seconds * AUDIO_TOKENS_PER_SECOND))
        if asks_questions(task):  # one upload; countTokens, the cache when the audio is long enough, one request a question
            cached = audio_tokens >= CACHE_MIN_TOKENS
            return Estimate(audio_tokens, other_bytes, "Files API upload" + (", one context cache" if cached else ""),
                            1 + cached + len(task.options["questions"]))
        request = inline_bytes(int((audio.bytes_after or 0) * share)) + other_bytes
        delivery = "inline" if request < self._inline_limit(settings) else "Files API upload"
        # the timeline's requests hear the same audio again
        requests = 1 + (self._timeline.requests(seconds) if self._timeline.applies(task) else 0)
        return Estimate(audio_tokens * (2 if requests > 1 else 1), request, delivery, requests)

    def count_tokens(self, audio: AudioFile, task: Task) -> int | None:
        """Input tokens of ``task`` on ``audio``, from Gemini's countTokens (uploads large audio).

        Only the task's time range is counted when it has one. The Gemini Developer API does not
        count a system instruction separately, so it is counted as part of the prompt text.
        """
        session = self._ready()
        settings = self.settings.for_task(task.name, task.options)
        model = task.model or settings.model
        other_bytes = request_bytes_besides_media(task, prompt_text(task, task.time_range))
        media = session.stager.stage(audio, task.time_range, other_bytes=other_bytes, inline_limit=self._inline_limit(settings))
        texts = [prompt_text(task, media.range_in_prompt), *([task.system_instruction] if task.system_instruction else [])]
        contents = [types.Content(role="user", parts=[media.part, *(types.Part(text=t) for t in texts)])]
        result, _ = session.client.call(
            f"counting tokens of {task.name} on {audio.source.name}",
            lambda: session.client.sdk.models.count_tokens(model=model, contents=contents),
            model=model,
        )
        return result.total_tokens

    def close(self) -> None:
        """Delete the files this backend uploaded or reused (when ``delete_uploads`` and no batch job
        was left unfinished), close the client."""
        with self._session_lock:
            session, self._session = self._session, None
        if session is None:
            return
        jobs_unfinished = session.batch.close() if session.batch is not None else False
        if self.settings.delete_uploads and jobs_unfinished:
            log.info("keeping uploaded files: unfinished batch jobs may still read them (Google deletes them after 48 h)")
        elif self.settings.delete_uploads:
            session.uploads.delete_used()
        session.client.close()


def _provenance(outcome: _Outcome, media: StagedMedia) -> dict[str, Any]:
    reply = outcome.last_reply
    provenance: dict[str, Any] = {
        "model_version": reply.model_version,
        "response_id": reply.response_id,
        "finish_reason": reply.finish_reason,
        "attempts": outcome.attempts,
        "transport_retries": outcome.transport_retries,
        "media": media.transport,
    }
    if media.file_name:
        provenance["file_name"] = media.file_name
    if outcome.batch_job:
        provenance["batch_job"] = outcome.batch_job
    if media.range_in_prompt is not None:
        provenance["range_in_prompt"] = str(media.range_in_prompt)
    if media.clip is not None:
        provenance["clip"] = str(media.clip)
    return provenance
