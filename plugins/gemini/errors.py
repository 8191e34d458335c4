"""Turning Gemini's failures into :class:`BackendError` messages a user can act on.

Every message passes through :func:`redact` so the API key can never leak into logs, run
records or output, whatever the service or a library put into the text.
"""

from __future__ import annotations

from typing import Literal

from google.genai import errors as genai_errors

from runpipe.errors import AnswerTooLong, BackendError, describe

from .retry import RetriesExhausted

AnswerProblem = Literal["invalid_json", "schema", "max_tokens", "repetition_loop", "recitation", "blocked", "no_answer"]


class GeminiAnswerError(BackendError):
    """Gemini answered, but no attempt gave valid JSON for the schema.

    ``problem`` says what was wrong with the last answer. ``max_tokens``, ``repetition_loop`` and
    ``recitation`` mean the window was too long for one answer: analysing shorter windows is the remedy.
    ``blocked`` means a safety filter refused the prompt or stopped the answer: it is not retried.
    """

    def __init__(self, message: str, *, problem: AnswerProblem, raw: str | None):
        super().__init__(message, retryable=False, raw=raw)
        self.problem = problem

    @classmethod
    def of(cls, message: str, *, problem: AnswerProblem, raw: str | None) -> "GeminiAnswerError":
        """The error for ``problem``: a :class:`GeminiAnswerTooLong` when shorter audio is the remedy."""
        too_long = problem in ("max_tokens", "repetition_loop", "recitation")
        return (GeminiAnswerTooLong if too_long else cls)(message, problem=problem, raw=raw)


class GeminiAnswerTooLong(GeminiAnswerError, AnswerTooLong):
    """The answer was cut at the output limit, fell into a repetition loop or was stopped for
    recitation: the core's
    :class:`~runpipe.errors.AnswerTooLong`, so the analyze stage splits the window."""

    @property
    def reason(self) -> str:
        return self.problem


def redact(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` replaced."""
    return text.replace(secret, "[redacted API key]") if secret else text


def _is_key_problem(error: genai_errors.APIError) -> bool:
    envelope = error.details.get("error", {}) if isinstance(error.details, dict) else {}
    reasons = {d.get("reason") for d in envelope.get("details") or [] if isinstance(d, dict)}
    return bool(reasons & {"API_KEY_INVALID", "API_KEY_EXPIRED"}) or "API key" in (error.message or "")


def explain(error: BaseException, *, what: str, key_env: str, model: str, endpoint: str, secret: str | None) -> BackendError:
    """A BackendError explaining ``error`` (raised while doing ``what``) in plain words."""
    attempts = 1
    gave_up_waiting = None
    if isinstance(error, RetriesExhausted):
        attempts, gave_up_waiting, error = error.attempts, error.gave_up_waiting, error.cause
    if isinstance(error, genai_errors.APIError):
        message, retryable = _explain_api_error(error, key_env=key_env, model=model, attempts=attempts, gave_up_waiting=gave_up_waiting)
    else:
        retryable = True
        message = f"could not reach Gemini at {endpoint} after {attempts} attempt(s): {describe(error)}"
    return BackendError(redact(f"{what}: {message}", secret), retryable=retryable)


def _explain_api_error(
    error: genai_errors.APIError, *, key_env: str, model: str, attempts: int, gave_up_waiting: float | None
) -> tuple[str, bool]:
    code, status, text = error.code, error.status or "", (error.message or "").strip().rstrip(".")
    said = f"({code} {status}): {text}".replace(" )", ")")
    if code in (400, 401, 403) and _is_key_problem(error):
        return f"Gemini did not accept the API key in {key_env} {said}. Set {key_env} to a valid key from https://aistudio.google.com/apikey.", False
    if code in (401, 403):
        return (
            f"Gemini refused access {said}. Check that the key in {key_env} is valid and allowed to use the "
            "Gemini API; a file uploaded with another key cannot be used either.",
            False,
        )
    if code == 404:
        return f"Gemini does not know what was asked for {said}. Check the model name ({model!r}) and the endpoint.", False
    if code == 429:
        if gave_up_waiting is not None:
            return f"Gemini asked to wait {gave_up_waiting:.0f} s before retrying {said}; that is longer than retry_max_delay, so runpipe stopped. The quota is probably used up for now.", True
        return (
            f"Gemini kept answering 429 RESOURCE_EXHAUSTED after {attempts} attempt(s) {said}. The key's rate limit "
            "or quota is used up: lower the backend's concurrency, wait, or check the plan.",
            True,
        )
    if code >= 500 or code == 408:
        return f"Gemini failed after {attempts} attempt(s) {said}. The service is having trouble; run again later (finished work is kept).", True
    if code == 400:
        return (
            f"Gemini rejected the request {said}. This usually means the request does not suit the model: a "
            "response schema feature Gemini does not support, audio in a format it does not accept, or an invalid "
            "generation setting (e.g. a thinking budget this model does not allow). Retrying would not help.",
            False,
        )
    return f"Gemini rejected the request {said}.", False
