"""runpipe: turn audio and video into structured understanding.

The public API lives here. Importing runpipe has no side effects: no plugins load, no
environment is read and no files are touched until an :class:`Engine` is created.
"""

from runpipe.errors import (
    BackendError,
    BackendUnavailable,
    MediaError,
    OutputError,
    PipelineConfigError,
    PluginError,
    RunpipeError,
)
from runpipe.hookspecs import hookimpl
from runpipe.interfaces import Backend, BackendLimits, Executor, Exporter, PostProcessor, Prompt, Source
from runpipe.model import (
    Analysis,
    Artifact,
    AudioFile,
    AudioInfo,
    Document,
    InputResult,
    MediaItem,
    RunResult,
    Segment,
    Speaker,
    Task,
    TimeRange,
    Usage,
    Word,
)

__version__ = "0.1.0"


def __getattr__(name: str):
    # Engine pulls in pluggy's manager, YAML and jsonschema; load it on first use only.
    if name == "Engine":
        from runpipe.engine import Engine

        return Engine
    raise AttributeError(f"module 'runpipe' has no attribute {name!r}")


__all__ = [
    "Analysis", "Artifact", "AudioFile", "AudioInfo", "Backend", "BackendError", "BackendLimits",
    "BackendUnavailable", "Document", "Engine", "Executor", "Exporter", "InputResult", "MediaError",
    "MediaItem", "OutputError", "PipelineConfigError", "PluginError", "PostProcessor", "Prompt",
    "RunResult", "RunpipeError", "Segment", "Source", "Speaker", "Task", "TimeRange", "Usage", "Word",
    "hookimpl", "__version__",
]
