"""The Gemini backend's options: names, defaults, validation, and where the API key comes from."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Mapping

from runpipe.errors import PipelineConfigError

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
    """Validated options of one GeminiBackend (see the plugin README for each one's meaning)."""

    api_key_env: str | None = None  # read only this variable; None: GEMINI_API_KEY, then GOOGLE_API_KEY
    base_url: str | None = None  # None: the SDK's own GOOGLE_GEMINI_BASE_URL, else Google's endpoint
    api_version: str = DEFAULT_API_VERSION
    model: str = DEFAULT_MODEL
    max_output_tokens: int = 32768  # tokens for the answer itself; thinking gets its own reserve on top
    # Transcribing and describing need little reasoning, and a low level keeps thinking from
    # eating into the answer's budget; raise it for hard questions.
    thinking: str = "low"
    thinking_budget: int | None = None  # an exact budget for models that take one (None: from ``thinking``)
    # Video (YouTube) frames cost ~300 tokens a second at the default resolution, which puts an
    # hour past what fits; runpipe is after the sound track, so frames go at the lowest resolution.
    media_resolution: str = "low"
    temperature: float | None = None  # None: the model's default (1.0 for Gemini 3, which loops when lowered)
    max_retries: int = 5
    retry_base_delay: float = 1.0
    retry_max_delay: float = 60.0
    repair_attempts: int = 2
    concurrency: int = 16  # requests in flight; the run's --concurrency bounds them too
    requests_per_minute: int | None = None  # client-side quota, e.g. 5 on a free tier
    tokens_per_minute: int | None = None  # input tokens (audio at 32/s plus text) per minute
    inline_limit_bytes: int = INLINE_LIMIT_BYTES  # Google's limit for the whole request
    delete_uploads: bool = True
    request_timeout: float = 600.0
    file_poll_interval: float = 2.0
    file_active_timeout: float = 600.0
    batch: bool = False  # analysis through Gemini's batch mode (half price, answers within 24 h)
    batch_poll_interval: float = 30.0
    batch_max_wait: float = 48 * 3600.0  # Google expires a job still unfinished after 48 hours
    batch_settle: float = 1.0  # submit once no request has arrived for this long
    batch_max_requests: int = 256
    # Segment times, words, speakers and languages from Gemini's transcription model (for tasks
    # whose answer has segments); off, or the model out of reach: the general model's own.
    transcribe_timeline: bool = True
    transcribe_model: str = "gemini-3.5-transcribe"

    #: Options a task may override in its ``options``: they change one request, not the client.
    PER_TASK = ("model", "max_output_tokens", "thinking", "thinking_budget", "media_resolution", "temperature", "repair_attempts", "inline_limit_bytes")
    #: Task options the engine gives every backend (``runpipe.tasks``): the speaker counts and the
    #: question. Gemini gets them through the prompt text, which the engine has already extended.
    FROM_ENGINE = ("num_speakers", "min_speakers", "max_speakers", "question")

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> "GeminiSettings":
        """Build settings from a pipeline's option mapping, checking every value's type and range."""
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
        known = {f.name: f for f in dataclasses.fields(self)}
        changes = {}
        for name, value in options.items():
            if name not in known:
                raise PipelineConfigError(f"{owner}: unknown option {name}; known options: {', '.join(sorted(known))}")
            changes[name] = _checked(owner, name, value)
        settings = dataclasses.replace(self, **changes)
        settings._check_ranges(owner)
        return settings

    def _check_ranges(self, owner: str) -> None:
        problems = [
            (self.max_output_tokens >= 1, "max_output_tokens must be at least 1"),
            (self.thinking in THINKING_TOKENS, f"thinking must be one of {', '.join(THINKING_TOKENS)}, got {self.thinking!r}"),
            (self.media_resolution in MEDIA_RESOLUTIONS, f"media_resolution must be one of {', '.join(MEDIA_RESOLUTIONS)}, got {self.media_resolution!r}"),
            (self.thinking_budget is None or self.thinking_budget >= 0, "thinking_budget must be 0 (no thinking) or more"),
            (self.max_output_tokens + self.thinking_tokens <= MODEL_OUTPUT_CEILING,
             f"max_output_tokens + the thinking reserve ({self.thinking_tokens}) must stay within {MODEL_OUTPUT_CEILING}"),
            (self.max_retries >= 0, "max_retries must be 0 or more"),
            (self.repair_attempts >= 0, "repair_attempts must be 0 or more"),
            (self.concurrency >= 1, "concurrency must be at least 1"),
            (self.requests_per_minute is None or self.requests_per_minute >= 1, "requests_per_minute must be at least 1"),
            (self.tokens_per_minute is None or self.tokens_per_minute >= 1, "tokens_per_minute must be at least 1"),
            (self.inline_limit_bytes >= 0, "inline_limit_bytes must be 0 or more"),
            (min(self.retry_base_delay, self.retry_max_delay, self.file_poll_interval) >= 0, "delays must not be negative"),
            (min(self.request_timeout, self.file_active_timeout, self.batch_max_wait) > 0, "timeouts must be positive"),
            (min(self.batch_poll_interval, self.batch_settle) >= 0, "batch intervals must not be negative"),
            (self.batch_max_requests >= 1, "batch_max_requests must be at least 1"),
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


_FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(GeminiSettings)}


def _checked(owner: str, name: str, value: Any) -> Any:
    """``value`` converted to the option's type, or a PipelineConfigError naming the option."""
    declared = _FIELD_TYPES[name]
    optional = "None" in declared
    if value is None and optional:
        return None
    if declared.startswith("bool"):
        ok = isinstance(value, bool)
    elif declared.startswith("int"):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif declared.startswith("float"):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, str) and bool(value.strip())
    if not ok:
        kind = {"bool": "true or false", "int": "a whole number", "float": "a number", "str": "a non-empty string"}[declared.split(" ")[0]]
        raise PipelineConfigError(f"{owner}: option {name} must be {kind}, got {value!r}")
    return value


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
