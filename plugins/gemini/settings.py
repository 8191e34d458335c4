"""The Gemini backend's options: names, defaults, validation, and where the API key comes from."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Mapping

from runpipe.errors import PipelineConfigError
DEFAULT_MODEL = "gemini-3-flash-preview"
KEY_ENV_VARS = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
DEFAULT_ENDPOINT = "https://generativelanguage.googleapis.com/"
#: Gemini 2.5/3 models write at most 65,536 tokens per answer, thinking included.
MODEL_OUTPUT_CEILING = 65536
#: Gemini's documented rate for audio input.
AUDIO_TOKENS_PER_SECOND = 32
#: Gemini's limit for a whole inline request, base64 included; above it, audio is uploaded.
INLINE_LIMIT_BYTES = 20_000_000


@dataclass(frozen=True)
class GeminiSettings:
    """Validated options of one GeminiBackend (see the plugin README for each one's meaning)."""

    api_key_env: str | None = None  # read only this variable; None: GEMINI_API_KEY, then GOOGLE_API_KEY
    base_url: str | None = None  # None: the SDK's own GOOGLE_GEMINI_BASE_URL, else Google's endpoint
    api_version: str | None = None  # None: the SDK's default (GOOGLE_GENAI_API_VERSION or v1)
    model: str = DEFAULT_MODEL
    max_output_tokens: int = 32768  # tokens for the answer itself; thinking gets its own budget on top
    thinking_budget: int = 1024
    temperature: float | None = None  # None: the model's default (1.0 for Gemini 3, which loops when lowered)
    max_retries: int = 5
    retry_base_delay: float = 1.0
    retry_max_delay: float = 60.0
    repair_attempts: int = 2
    concurrency: int = 16  # requests in flight; the run's --concurrency bounds them too
    requests_per_minute: int | None = None  # client-side quota, e.g. 5 on a free tier
    tokens_per_minute: int | None = None  # input tokens (audio at 32/s plus text) per minute
    inline_limit_bytes: int = INLINE_LIMIT_BYTES  # Google's limit is 20 MB for the whole request
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
    PER_TASK = ("model", "max_output_tokens", "thinking_budget", "temperature", "repair_attempts", "inline_limit_bytes")
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
            (self.thinking_budget >= 0, "thinking_budget must be 0 (no thinking) or more"),
            (self.max_output_tokens + self.thinking_budget <= MODEL_OUTPUT_CEILING,
             f"max_output_tokens + thinking_budget must stay within {MODEL_OUTPUT_CEILING}"),
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
