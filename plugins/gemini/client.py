"""The google-genai client, and the one path every API call takes: gate, retries, explanation."""

from __future__ import annotations

from typing import Callable, TypeVar

from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from .errors import explain, redact
from .retry import TRANSPORT_ERRORS, RequestGate, RetriesExhausted, RetryPolicy, call_with_retries
from .settings import GeminiSettings

T = TypeVar("T")


class GeminiClient:
    """One SDK client per backend instance; thread-safe (the SDK's httpx client is).

    The endpoint is ``base_url`` when the option is set, else whatever the SDK resolves
    (``GOOGLE_GEMINI_BASE_URL``, then Google's): the client is built without a base URL then, so
    the SDK's own variable keeps working.
    """

    def __init__(self, settings: GeminiSettings, *, key_env: str, api_key: str):
        self.settings = settings
        self.key_env = key_env
        self._api_key = api_key
        self.sdk = genai.Client(
            api_key=api_key,
            vertexai=False,  # the Files API only exists in the Gemini Developer API
            http_options=types.HttpOptions(
                base_url=settings.base_url,
                api_version=settings.api_version,
                timeout=int(settings.request_timeout * 1000),  # the SDK takes milliseconds
            ),
        )
        self.gate = RequestGate(settings.concurrency, settings.requests_per_minute, settings.tokens_per_minute)
        self.policy = RetryPolicy(settings.max_retries, settings.retry_base_delay, settings.retry_max_delay)

    def call(self, what: str, request: Callable[[], T], *, model: str | None = None, tokens: int = 0) -> tuple[T, int]:
        """Run one API request with the gate and retries; ``(result, retries)``. ``tokens``
        is the request's estimated input tokens, spent from ``tokens_per_minute``.

        Failures become :class:`BackendError` with a plain explanation (``what`` names the
        action, e.g. "uploading talk.flac"); the key is redacted from the message.
        """
        try:
            return call_with_retries(request, what=what, policy=self.policy, gate=self.gate, scrub=self.redact, tokens=tokens)
        except (RetriesExhausted, genai_errors.APIError, *TRANSPORT_ERRORS) as error:
            raise explain(
                error, what=what, key_env=self.key_env, model=model or self.settings.model,
                endpoint=self.settings.endpoint, secret=self._api_key,
            ) from error

    def redact(self, text: str) -> str:
        """``text`` with this client's key removed."""
        return redact(text, self._api_key)

    def close(self) -> None:
        self.sdk.close()
