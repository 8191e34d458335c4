"""The Gemini backend's options: names, defaults, validation, and where the API key comes from."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Mapping

from runpipe.errors import PipelineConfigError
from runpipe.options import option, parse_options

from .limits import AUDIO_TOKENS_PER_SECOND, INLINE_LIMIT_BYTES, MODEL_OUTPUT_CEILING  # noqa: F401 (re-exported)

#: The newest stable (GA) Flash model on Google's models and deprecations pages (late 2026:
#: 3.8, 3.7 and 3.6 Flash are stable, with no shutdown date announced). A pinned stable name
#: rather than the moving ``gemini-flash-latest`` alias, so that a run's results do not change
#: under the user when Google moves the alias; ``gemini-3-flash-preview`` is deprecated.
DEFAULT_MODEL = "gemini-3.8-flash"
#: API version runpipe pins. google-genai 3.6 defaults to ``v1``, but Google's documentation
#: writes every REST example for the features runpipe uses (Files API uploads, batches, context
#: caching, per-part ``media_resolution``, ``thinkingLevel``) against ``v1beta``, and says
#: per-part media resolution is a v1beta parameter. Pinning also keeps an SDK upgrade that
#: changes its default from moving runpipe's requests to another surface.
DEFAULT_API_VERSION = "v1beta"
KEY_ENV_VARS = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
DEFAULT_ENDPOINT = "https://generativelanguage.googleapis.com/"
#: How much a model thinks: ``thinkingLevel`` for Gemini 3 models. The same names map to a
#: thinking budget for models that only take one (Gemini 2.5 and older), and to the tokens
#: reserved on top of the answer's budget (thinking counts against maxOutputTokens). Every
#: budget here is valid on every 2.5 model (Flash-Lite takes 0 or 512-24,576, Pro 128-32,768).
THINKING_TOKENS = {"minimal": 512, "low": 2048, "medium": 8192, "high": 16384}
MEDIA_RESOLUTIONS = ("low", "medium", "high")


@dataclass(frozen=True)
class GeminiSettings:
    """Validated options of one GeminiBackend: its options object (``runpipe schema gemini``)."""

    api_key_env: str | None = option(None, "read the key only from this variable (unset: GEMINI_API_KEY, then GOOGLE_API_KEY)")
    base_url: str | None = option(None, "endpoint (unset: the SDK's GOOGLE_GEMINI_BASE_URL, else Google's)")
    api_version: str = option(DEFAULT_API_VERSION, "API version the requests use (v1beta: see settings.DEFAULT_API_VERSION)")
    model: str = option(DEFAULT_MODEL, "model for tasks that name none; checked up front against models.list")
    max_output_tokens: int = option(32768, "tokens for the answer itself; thinking gets its own reserve on top", minimum=1)
    # Transcribing and describing need little reasoning, and a low level keeps thinking from
    # eating into the answer's budget; raise it for hard questions.
    thinking: str = option("low", "how much the model thinks: minimal, low, medium or high (thinkingLevel on Gemini 3)")
    thinking_budget: int | None = option(None, "an exact thinking budget for the Gemini 2.x models that take one", minimum=0)
    # Video (YouTube) frames cost ~300 tokens a second at the default resolution, which puts an
    # hour past what fits; runpipe is after the sound track, so frames go at the lowest resolution.
    media_resolution: str = option("low", "resolution of video frames (YouTube URLs): low, medium or high")
    temperature: float | None = option(None, "unset: the model's default (Google advises 1.0 for Gemini 3, which loops when lowered)",
                                       minimum=0, maximum=2)
    max_retries: int = option(5, "retries of 408/429/5xx and connection failures", minimum=0)
    retry_base_delay: float = option(1.0, "seconds before the first retry (exponential backoff with jitter)", minimum=0)
    retry_max_delay: float = option(60.0, "longest wait between retries; a longer Retry-After gives up at once", minimum=0)
    repair_attempts: int = option(2, "extra requests after an unusable answer (broken JSON, schema violation, cut, loop)", minimum=0)
    concurrency: int = option(16, "requests in flight at once (the run's --concurrency bounds them too)", minimum=1)
    requests_per_minute: int | None = option(None, "client-side request quota, e.g. 5 on a free tier", minimum=1)
    tokens_per_minute: int | None = option(None, "client-side input-token quota (audio at 32 a second plus text)", minimum=1)
    inline_limit_bytes: int = option(INLINE_LIMIT_BYTES, "audio goes inline while the whole request stays below this, else it is uploaded", minimum=0)
    delete_uploads: bool = option(True, "delete uploaded files when the engine closes (false: reuse them for 48 hours)")
    request_timeout: float = option(600.0, "seconds per request", minimum=0.001)
    file_poll_interval: float = option(2.0, "seconds between checks that an upload is ACTIVE", minimum=0)
    file_active_timeout: float = option(600.0, "seconds to wait for an upload to become ACTIVE", minimum=0.001)
    batch: bool = option(False, "analysis through Gemini's batch mode (half price, answers within 24 h)")
    batch_poll_interval: float = option(30.0, "seconds between checks that a batch job is done", minimum=0)
    batch_max_wait: float = option(48 * 3600.0, "seconds to wait for a batch job (Google expires one unfinished after 48 h)", minimum=0.001)
    batch_settle: float = option(1.0, "submit a batch job once no request has joined it for this long", minimum=0)
    batch_max_requests: int = option(256, "requests in one batch job at most", minimum=1)
    # Segment times, words, speakers and languages from Gemini's transcription model (for tasks
    # whose answer has segments); off, or the model out of reach: the general model's own.
    transcribe_timeline: bool = option(True, "segment times, words, speakers and languages from the transcription model")
    transcribe_model: str = option("gemini-3.5-transcribe", "the transcription model for the timeline")
    retime_moments: bool = option(True, "move the MM:SS moments answers cite onto the speech heard in the audio (needs runpipe[local])")

    #: Options a task may override in its ``options``: they change one request, not the client.
    PER_TASK = ("model", "max_output_tokens", "thinking", "thinking_budget", "media_resolution", "temperature", "repair_attempts", "inline_limit_bytes")
    #: Task options the engine gives every backend (``runpipe.tasks``): the speaker counts and the
    #: questions. Gemini gets them through the prompt text, which the engine has already extended,
    #: or (``questions``) asks them one by one.
    FROM_ENGINE = ("num_speakers", "min_speakers", "max_speakers", "question", "questions")

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> "GeminiSettings":
        """Settings from a pipeline's option mapping, every value's type, range and choice checked."""
        return cls()._with(options, "backend gemini")

    def for_task(self, task_name: str, options: Mapping[str, Any]) -> "GeminiSettings":
        """These settings with a task's own ``options`` applied (only :attr:`PER_TASK` ones;
        :attr:`FROM_ENGINE` ones are already in the prompt)."""
        options = {k: v for k, v in options.items() if k not in self.FROM_ENGINE}
        fixed = sorted(set(options) - set(self.PER_TASK))
        if fixed:
            raise PipelineConfigError(
                f"task {task_name}: option(s) {', '.join(fixed)} of backend gemini apply to the whole backend; "
                f"set them under analyze.options. Per task only: {', '.join(self.PER_TASK)}"
            )
        return self._with(options, f"task {task_name}") if options else self

    def _with(self, options: Mapping[str, Any], owner: str) -> "GeminiSettings":
        parsed = parse_options(type(self), options, owner)  # types and ranges, on the defaults
        settings = dataclasses.replace(self, **{name: getattr(parsed, name) for name in options})
        settings.check(owner)
        return settings

    def check(self, owner: str) -> None:
        """What :func:`runpipe.options.parse_options` cannot check: choices and sums of options."""
        problems = [
            (self.thinking in THINKING_TOKENS, f"thinking must be one of {', '.join(THINKING_TOKENS)}, got {self.thinking!r}"),
            (self.media_resolution in MEDIA_RESOLUTIONS, f"media_resolution must be one of {', '.join(MEDIA_RESOLUTIONS)}, got {self.media_resolution!r}"),
            (self.max_output_tokens + self.thinking_tokens <= MODEL_OUTPUT_CEILING,
             f"max_output_tokens + the thinking reserve ({self.thinking_tokens}) must stay within {MODEL_OUTPUT_CEILING}"),
        ]
        for ok, message in problems:
            if not ok:
                raise PipelineConfigError(f"{owner}: {message}")

    @property
    def thinking_tokens(self) -> int:
        """Tokens of thinking this configuration allows for: the exact budget, else the level's."""
        return self.thinking_budget if self.thinking_budget is not None else THINKING_TOKENS.get(self.thinking, 0)

    @property
    def endpoint(self) -> str:
        """The base URL requests go to, resolved the way the SDK resolves it."""
        return self.base_url or os.environ.get("GOOGLE_GEMINI_BASE_URL") or DEFAULT_ENDPOINT


def find_api_key(api_key_env: str | None) -> tuple[str, str] | None:
    """``(variable name, key)`` of the first key variable that is set, or None."""
    for name in (api_key_env,) if api_key_env else KEY_ENV_VARS:
        value = os.environ.get(name, "").strip()
        if value:
            return name, value
    return None


def missing_key_message(api_key_env: str | None) -> str:
    names = api_key_env or " or ".join(KEY_ENV_VARS)
    return (
        f"no Gemini API key: set {names} to a key from https://aistudio.google.com/apikey "
        "(or choose the offline backend with --backend local)"
    )
