"""Gemini's batch mode: analysis requests gathered into batch jobs (half the price of direct
requests, answered within 24 hours), polled until done, each answer handed to its caller.

``analyze()`` builds its request exactly as in the direct path and gives it to the backend's
:class:`BatchCollector`, which blocks the caller. The collector submits one job for the requests
that arrived until none came for ``batch_settle`` seconds, or the job reached
``batch_max_requests`` requests or :data:`JOB_BODY_LIMIT` bytes (the job is one HTTP request), then
polls it every ``batch_poll_interval`` seconds for up to ``batch_max_wait``.
Answers come back in the order of the requests, as the API documents; that is how they are mapped
back (the API does not reliably echo request metadata).

Resumable: right after a job is submitted, each request's content hash is mapped to (job,
position) in the run store (kind ``gemini_batch``). A rerun after a crash, a kill or a
``batch_max_wait`` timeout builds the same requests, finds them there and polls the stored job
instead of paying for a new one. A stored job that is gone, failed, cancelled or expired is
forgotten and the request submitted again. A request's entry is deleted once it was answered:
from then on the engine's own analysis cache remembers the result.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

from google.genai import errors as genai_errors
from google.genai import types

from runpipe.errors import BackendError
from runpipe.store import RunStore

from .client import GeminiClient

log = logging.getLogger("runpipe.plugins.gemini")

#: The run store kind of the request -> (job, position) entries.
KIND = "gemini_batch"
#: Bytes of requests in one job: the whole job travels in one request body, which Google limits to
#: 20 MB; the margin covers the job's envelope. Inline audio fills it fast; uploaded audio (a lower
#: ``inline_limit_bytes``) takes ~1 kB a request.
JOB_BODY_LIMIT = 19_000_000
#: Per-request failures that would fail again: google.rpc codes INVALID_ARGUMENT, NOT_FOUND,
#: PERMISSION_DENIED, FAILED_PRECONDITION, and their HTTP counterparts in case the service uses those.
_PERMANENT_CODES = frozenset({3, 5, 7, 9, 400, 403, 404})


@dataclass(frozen=True)
class BatchRequest:
    """One generateContent request for a batch job; ``key`` identifies its content and endpoint."""

    what: str
    model: str
    inlined: types.InlinedRequest
    key: str
    size: int  # bytes of its JSON in the job's request body

    @classmethod
    def build(cls, what: str, endpoint: str, model: str, contents: list[types.Content], config: types.GenerateContentConfig) -> "BatchRequest":
        inlined = types.InlinedRequest(model=model, contents=contents, config=config)
        body = inlined.model_dump_json(exclude_none=True)  # media as base64, as it travels
        return cls(what, model, inlined, hashlib.sha256(f"{endpoint}\n{body}".encode()).hexdigest(), len(body))


@dataclass(frozen=True)
class BatchAnswer:
    response: types.GenerateContentResponse
    job: str


class _JobGone(Exception):
    """The job cannot answer: deleted, unknown to this key, or ended failed, cancelled or expired."""


class _Group:
    """Requests for one model waiting to be submitted together (guarded by the collector's lock)."""

    def __init__(self, model: str):
        self.model = model
        self.waiting: list[tuple[BatchRequest, Future]] = []
        self.size = 0
        self.last_arrival = 0.0

    def add(self, request: BatchRequest, future: Future) -> None:
        self.waiting.append((request, future))
        self.size += request.size
        self.last_arrival = time.monotonic()


class BatchCollector:
    """Gathers one backend's requests into batch jobs and waits for their answers. Thread-safe."""

    def __init__(self, client: GeminiClient, store: RunStore):
        self._client = client
        self._settings = client.settings
        self._store = store
        self._lock = threading.Lock()
        self._open: dict[str, _Group] = {}  # model -> requests not yet submitted
        self._jobs: dict[str, Future] = {}  # job name -> the finished BatchJob, shared by its callers
        self._closed = threading.Event()
        self._gave_up_waiting = False  # a job outlived batch_max_wait: a rerun will want it

    def ask(self, request: BatchRequest) -> BatchAnswer:
        """The batch answer to ``request`` (blocks); BackendError when no job could answer it."""
        stored = self._store.get(KIND, request.key)
        if stored is not None:
            try:
                return self._answer(request, stored["job"], stored["index"])
            except _JobGone as gone:
                log.info("%s: stored batch job %s %s; submitting the request again", request.what, stored["job"], gone)
                self._store.delete(KIND, request.key)
        job, index = self._enqueue(request).result()
        try:
            return self._answer(request, job, index)
        except _JobGone as gone:
            self._store.delete(KIND, request.key)  # a rerun submits it again
            raise BackendError(f"{request.what}: Gemini batch job {job} {gone}", retryable=True) from None

    def close(self) -> bool:
        """Stop polling (waiting callers fail; a rerun resumes their jobs) and close the store.

        Returns whether jobs were left unfinished: their requests may name uploaded files.
        """
        with self._lock:  # before polling stops: a stopped poller forgets its job
            groups, self._open = list(self._open.values()), {}
            unfinished = self._gave_up_waiting or any(not future.done() for future in self._jobs.values())
        self._closed.set()
        for group in groups:
            for _, future in group.waiting:
                future.set_exception(BackendError("the Gemini backend closed before its batch job was submitted", retryable=True))
        self._store.close()
        return unfinished

    # -- answers --------------------------------------------------------------------------------

    def _answer(self, request: BatchRequest, job_name: str, index: int) -> BatchAnswer:
        job = self._finished(job_name)
        responses = (job.dest.inlined_responses if job.dest else None) or []
        if index >= len(responses):
            raise _JobGone(f"returned {len(responses)} answer(s), none for request {index + 1}")
        self._store.delete(KIND, request.key)
        item = responses[index]
        if item.error is not None or item.response is None:
            code = item.error.code if item.error else None
            message = (item.error.message if item.error else None) or "no answer and no reason given"
            raise BackendError(
                self._client.redact(f"{request.what}: Gemini batch job {job_name} could not answer this request (code {code}): {message}"),
                retryable=code not in _PERMANENT_CODES,
            )
        return BatchAnswer(item.response, job_name)

    def _finished(self, name: str) -> types.BatchJob:
        """The job once it has succeeded; one polling thread per job, whoever asks."""
        with self._lock:
            future = self._jobs.get(name)
            if future is None:
                future = self._jobs[name] = Future()
                threading.Thread(target=self._poll, args=(name, future), name="runpipe-gemini-batch", daemon=True).start()
        return future.result()

    def _poll(self, name: str, future: Future) -> None:
        deadline = time.monotonic() + self._settings.batch_max_wait
        state = None
        try:
            while True:
                job = self._get(name)
                if job.state != state:
                    state = job.state
                    log.info("batch job %s: %s", name, state.name if state else "no state")
                if job.done:
                    if state != types.JobState.JOB_STATE_SUCCEEDED:
                        raise _JobGone(f"ended in state {state.name if state else None}")
                    future.set_result(job)
                    return
                if time.monotonic() >= deadline:
                    self._gave_up_waiting = True
                    raise BackendError(
                        f"Gemini batch job {name} was still {state.name if state else 'unfinished'} after batch_max_wait "
                        f"({self._settings.batch_max_wait:g} s); run again to collect its answers (the job is remembered)",
                        retryable=True,
                    )
                if self._closed.wait(self._settings.batch_poll_interval):
                    raise BackendError(f"the Gemini backend closed while waiting for batch job {name}; run again to collect its answers", retryable=True)
        except Exception as error:  # every waiting caller must hear of it, whatever it is
            with self._lock:
                del self._jobs[name]  # a later run in this engine polls afresh
            future.set_exception(error)

    def _get(self, name: str) -> types.BatchJob:
        try:
            job, _ = self._client.call(f"checking batch job {name}", lambda: self._client.sdk.batches.get(name=name))
        except BackendError as error:
            cause = error.__cause__
            if isinstance(cause, genai_errors.APIError) and cause.code in (403, 404):
                raise _JobGone(f"is unknown to Gemini ({cause.code} {cause.status})") from error
            raise
        return job

    # -- submission -----------------------------------------------------------------------------

    def _enqueue(self, request: BatchRequest) -> Future:
        """A future for ``(job name, position)`` once the request's job is submitted."""
        future: Future = Future()
        settings = self._settings
        with self._lock:
            group = self._open.get(request.model)
            if group is not None and group.size + request.size > JOB_BODY_LIMIT:
                self._submit(self._open.pop(request.model))  # with this request the job would be too large
                group = None
            if group is None:
                group = self._open[request.model] = _Group(request.model)
                self._settle_later(group, settings.batch_settle)
            group.add(request, future)
            if len(group.waiting) >= settings.batch_max_requests:
                self._submit(self._open.pop(request.model))
        return future

    def _settle_later(self, group: _Group, delay: float) -> None:
        timer = threading.Timer(delay, self._settled, (group,))
        timer.daemon = True
        timer.start()

    def _settled(self, group: _Group) -> None:
        """Submit ``group`` if no request joined it for ``batch_settle`` seconds, else look again later."""
        with self._lock:
            if self._open.get(group.model) is not group:
                return  # already submitted: it filled up, or the backend closed
            remaining = group.last_arrival + self._settings.batch_settle - time.monotonic()
            if remaining > 0:
                self._settle_later(group, remaining)
            else:
                self._submit(self._open.pop(group.model))

    def _submit(self, group: _Group) -> None:
        # The HTTP request runs on its own thread: the lock is held here.
        threading.Thread(target=self._create, args=(group,), name="runpipe-gemini-batch", daemon=True).start()

    def _create(self, group: _Group) -> None:
        requests = [request for request, _ in group.waiting]
        count = len(requests)
        try:
            job, _ = self._client.call(
                f"submitting a batch job of {count} request(s)",
                lambda: self._client.sdk.batches.create(
                    model=group.model,
                    src=[request.inlined for request in requests],
                    config=types.CreateBatchJobConfig(display_name=f"runpipe: {count} request(s)"),
                ),
                model=group.model,
            )
            # Remembered before anyone waits on the job, so a crash from here on loses nothing.
            for index, request in enumerate(requests):
                self._store.put(KIND, request.key, {"job": job.name, "index": index})
        except Exception as error:  # every waiting caller must hear of it, whatever it is
            for _, future in group.waiting:
                future.set_exception(error)
            return
        log.info("submitted batch job %s with %d request(s)", job.name, count)
        for index, (_, future) in enumerate(group.waiting):
            future.set_result((job.name, index))
