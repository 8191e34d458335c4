"""Every error runpipe raises on purpose. Messages are written for the user who ran the command."""

from __future__ import annotations


class RunpipeError(Exception):
    """Base class: the CLI prints these without a traceback (unless -v)."""


class PipelineConfigError(RunpipeError):
    """A pipeline file is invalid: the message names the file, the path inside it and the line."""


class PluginError(RunpipeError):
    """A plugin misbehaved or was registered wrongly; names the plugin."""


class MediaError(RunpipeError):
    """An input cannot be read as audio (empty, corrupt, not media, unsupported)."""


class FFmpegError(MediaError):
    def __init__(self, message: str, cmd: list[str] | None = None):
        super().__init__(message)
        self.cmd = cmd


class BackendUnavailable(RunpipeError):
    """A backend cannot run here (missing key, package or model); says how to fix it."""


class BackendError(RunpipeError):
    """A backend ran but could not produce a valid answer."""

    def __init__(self, message: str, *, retryable: bool = False, raw: str | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.raw = raw


class AnswerTooLong(BackendError):
    """The backend answered, but its answer for this much audio does not fit in one response
    (cut off at the output limit, or stuck repeating itself). Shorter audio is the remedy: the
    analyze stage splits the window in two and asks for each half."""

    #: A few words on what went wrong, for messages (a backend may say more precisely).
    reason: str = "too long"


class StateError(RunpipeError):
    """runpipe's own folder or run store cannot be used (a file in the way, a full disk); says
    what is wrong and how to fix it."""


class OutputError(RunpipeError):
    """An output cannot be written where the pipeline asks (unwritable, escapes the folder)."""


class StageError(RunpipeError):
    """Wraps any failure of one stage for one input, naming the stage, plugin and input."""

    def __init__(self, stage: str, item_name: str, plugin: str | None, cause: BaseException):
        self.stage = stage
        self.item_name = item_name
        self.plugin = plugin
        self.cause = cause
        who = f" (plugin {plugin})" if plugin else ""
        reason = describe(cause)
        reason = reason.removeprefix(f"{item_name}: ")  # media errors already name the input
        super().__init__(f"{item_name}: {stage} failed{who}: {reason}")


def describe(exc: BaseException) -> str:
    """A one-line description of an exception suitable for users."""
    if isinstance(exc, RunpipeError):
        return str(exc)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
