"""Retrying transient Gemini failures, and the one gate all of a backend's threads pass through.

google-genai 3.4 does not retry at all unless ``HttpOptions.retry_options`` is set, and when it
is, tenacity waits its own exponential schedule and ignores ``Retry-After`` and ``RetryInfo``. So
the SDK's retries stay off and this module retries instead: 408/429/5xx and dropped or timed-out
connections, with exponential backoff and jitter, never sooner than the server asked.

A 429 is about the key's quota, not about one request, so it closes the :class:`RequestGate` for
every thread of the backend until the wait is over, instead of each thread finding out alone.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import random
import re
import threading
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Callable, Iterator, TypeVar

from google.genai import errors as genai_errors

log = logging.getLogger("runpipe.plugins.gemini")
T = TypeVar("T")

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Connection-level failures of whichever HTTP library the SDK uses (httpx or httpx2)."""
    found: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module_name in ("httpx", "httpx2"):
        try:
            module = __import__(module_name)
        except ImportError:
            continue
        found.append(module.TransportError)  # connect/read/write errors, timeouts, dropped connections
    return tuple(found)


TRANSPORT_ERRORS = _transport_errors()


def is_transient(error: BaseException) -> bool:
    """True for failures worth retrying: 408/429/5xx answers and connection problems."""
    if isinstance(error, genai_errors.APIError):
        return error.code in RETRYABLE_STATUS
    return isinstance(error, TRANSPORT_ERRORS)


def requested_delay(error: BaseException) -> float | None:
    """Seconds the server asked us to wait: the ``Retry-After`` header or a RetryInfo detail."""
    if not isinstance(error, genai_errors.APIError):
        return None
    delays = []
    headers = getattr(error.response, "headers", None) or {}
    header = headers.get("retry-after")
    if header:
        try:
            delays.append(float(header))
        except ValueError:  # the HTTP-date form
            with contextlib.suppress(TypeError, ValueError):
                delays.append(parsedate_to_datetime(header).timestamp() - time.time())
    envelope = error.details.get("error", {}) if isinstance(error.details, dict) else {}
    for detail in envelope.get("details") or []:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            match = re.fullmatch(r"\s*([\d.]+)s\s*", str(detail.get("retryDelay", "")))
            if match:
                delays.append(float(match.group(1)))
    return max(0.0, *delays) if delays else None


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry."""

    max_retries: int
    base_delay: float
    max_delay: float

    def backoff(self, retry_number: int) -> float:
        """Exponential backoff with jitter: between half and all of ``base * 2**n``, capped."""
        ceiling = min(self.max_delay, self.base_delay * 2**retry_number)
        return random.uniform(ceiling / 2, ceiling)


class RetriesExhausted(Exception):
    """The last transient failure, after every allowed retry (or a wait longer than allowed)."""

    def __init__(self, cause: BaseException, attempts: int, gave_up_waiting: float | None = None):
        super().__init__(str(cause))
        self.cause = cause
        self.attempts = attempts
        self.gave_up_waiting = gave_up_waiting


class MinuteQuota:
    """A sliding one-minute budget (requests, or tokens): ``take(n)`` waits until ``n`` more fit.

    Spending client-side what the project's quota allows avoids the 429 storms users of free
    and low tiers hit; a single request larger than the whole budget is let through alone.
    """

    WINDOW = 60.0

    def __init__(self, per_minute: int):
        self.per_minute = per_minute
        self._spent: collections.deque[tuple[float, int]] = collections.deque()
        self._lock = threading.Lock()

    def take(self, amount: int = 1) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                while self._spent and self._spent[0][0] <= now - self.WINDOW:
                    self._spent.popleft()
                used = sum(n for _, n in self._spent)
                if used + amount <= self.per_minute or not self._spent:
                    self._spent.append((now, amount))
                    return
                wait = self._spent[0][0] + self.WINDOW - now
            time.sleep(max(wait, 0.01))


class RequestGate:
    """Bounds concurrent requests, spends the per-minute quotas, and holds every thread back
    while the service asked to wait."""

    def __init__(self, concurrency: int, requests_per_minute: int | None = None, tokens_per_minute: int | None = None):
        self._slots = threading.BoundedSemaphore(concurrency)
        self._lock = threading.Lock()
        self._open_at = 0.0  # time.monotonic() before which no request may start
        self._requests = MinuteQuota(requests_per_minute) if requests_per_minute else None
        self._tokens = MinuteQuota(tokens_per_minute) if tokens_per_minute else None

    def close_for(self, seconds: float) -> None:
        """No request starts for ``seconds`` (extends, never shortens, an earlier closing)."""
        with self._lock:
            self._open_at = max(self._open_at, time.monotonic() + seconds)

    def _wait_until_open(self) -> None:
        while True:
            with self._lock:
                remaining = self._open_at - time.monotonic()
            if remaining <= 0:
                return
            time.sleep(remaining)

    @contextlib.contextmanager
    def slot(self, tokens: int = 0) -> Iterator[None]:
        """Hold one of the concurrency slots for one request (costing ``tokens`` input tokens),
        once the gate is open and the per-minute quotas allow it."""
        if self._requests is not None:
            self._requests.take(1)
        if self._tokens is not None and tokens:
            self._tokens.take(tokens)
        while True:
            self._wait_until_open()
            self._slots.acquire()
            with self._lock:
                still_open = self._open_at <= time.monotonic()
            if still_open:
                break
            self._slots.release()  # closed while we queued for a slot: wait again, without a slot
        try:
            yield
        finally:
            self._slots.release()


def call_with_retries(
    call: Callable[[], T], *, what: str, policy: RetryPolicy, gate: RequestGate, scrub: Callable[[str], str], tokens: int = 0
) -> tuple[T, int]:
    """Run ``call`` through ``gate``, retrying transient failures. Returns ``(result, retries)``.

    Non-transient errors propagate at once; transient ones raise :class:`RetriesExhausted` when
    retries run out or the server asks for a wait longer than ``policy.max_delay``. ``scrub``
    cleans what is logged about each retry (the service's message could contain anything).
    """
    retries = 0
    while True:
        try:
            with gate.slot(tokens):
                return call(), retries
        except Exception as error:
            if not is_transient(error):
                raise
            asked = requested_delay(error)
            if asked is not None and asked > policy.max_delay:
                raise RetriesExhausted(error, retries + 1, gave_up_waiting=asked) from error
            if retries >= policy.max_retries:
                raise RetriesExhausted(error, retries + 1) from error
            delay = max(asked or 0.0, policy.backoff(retries))
            if isinstance(error, genai_errors.APIError) and error.code == 429:
                gate.close_for(delay)  # the quota is shared: every thread waits
            log.info("%s: %s; retry %d of %d in %.1f s", what, scrub(describe_transient(error)), retries + 1, policy.max_retries, delay)
            time.sleep(delay)
            retries += 1


def describe_transient(error: BaseException) -> str:
    if isinstance(error, genai_errors.APIError):
        return f"Gemini answered {error.code} {error.status or ''}: {error.message or 'no message'}"
    return f"connection problem ({type(error).__name__}: {error})"
