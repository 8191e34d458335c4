"""The contracts a plugin's components fulfil. Register them through the hooks in
:mod:`runpipe.hookspecs`; the engine instantiates them with options it has validated.

Every component follows the same small contract (after haystack's component contract):

* ``__init__(options)`` is cheap: it stores validated options, loads nothing heavy.
* Heavy work (loading models, opening clients) happens in ``warm_up()``, called once per
  engine before first use. Components are shared across inputs, so keep them thread-safe.
* Options come from the pipeline YAML. Declare them as one ``Options`` dataclass
  (:func:`runpipe.options.option` fields: default, documentation, range); the engine rejects
  unknown keys, wrong types and values out of range, and ``runpipe schema NAME`` prints them.
  Components without one list ``option_names`` and read the plain ``self.options`` mapping.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable, Mapping

from runpipe.errors import PipelineConfigError
from runpipe.options import parse_options
from runpipe.model import Analysis, AudioFile, Document, MediaItem, RunResult, Task, TimeRange


def check_options(owner: str, options: Mapping[str, Any], allowed: Iterable[str]) -> dict[str, Any]:
    """Return ``options`` as a dict, raising a clear error for keys ``owner`` does not know."""
    allowed = set(allowed)
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise PipelineConfigError(
            f"{owner}: unknown option(s) {', '.join(unknown)}; known options: {', '.join(sorted(allowed)) or 'none'}"
        )
    return dict(options)


def take_options(component: Any, owner: str, options: Mapping[str, Any] | None) -> None:
    """Validate ``options`` for ``component``: into ``component.settings`` (its ``Options``
    object) when the class declares one, else against its ``option_names``."""
    component.options = dict(options or {})
    if component.Options is not None:
        component.settings = parse_options(component.Options, component.options, owner)
    else:
        check_options(owner, component.options, component.option_names)


@dataclass(frozen=True, slots=True)
class IngestOptions:
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    recursive: bool = True


class Source(ABC):
    """Turns a location the user typed (path, glob, URL, ...) into media items."""

    name: ClassVar[str]
    option_names: ClassVar[tuple[str, ...]] = ()
    #: The component's options object (see :mod:`runpipe.options`); with one, ``option_names``
    #: is not read and ``self.settings`` holds the validated, typed values.
    Options: ClassVar[type | None] = None

    def __init__(self, options: Mapping[str, Any] | None = None):
        take_options(self, f"source {self.name}", options)

    @abstractmethod
    def claims(self, location: str) -> bool:
        """True when this source understands ``location``; the first source that claims it wins."""

    @abstractmethod
    def resolve(self, location: str, options: IngestOptions) -> Iterable[MediaItem]:
        """Yield the media items at ``location``. Never modify what is there."""


@dataclass(frozen=True, slots=True)
class BackendLimits:
    """What one request to a backend can take. The engine chunks longer audio."""

    max_audio_seconds: float | None = None  # hard limit per request (Gemini: 9.5 h)
    preferred_chunk_seconds: float | None = None  # where output limits make smaller windows safer
    chunk_overlap_seconds: float = 2.0


@dataclass(frozen=True, slots=True)
class Estimate:
    """What one task on one input would cost a backend, worked out without calling it."""

    audio_tokens: int | None = None  # input tokens the audio costs (None: not counted in tokens)
    request_bytes: int | None = None  # size of the request body (None: nothing is sent)
    delivery: str = "local"  # how the audio reaches the backend: "inline", "Files API upload", ...
    requests: int = 1  # requests the task costs on one input (a timeline from a second model: 2)


class Backend(ABC):
    """Answers an analysis task about an audio file with JSON conforming to ``task.schema``.

    ``analyze`` may be given a ``window`` (a stretch of the audio's own timeline): it must
    analyse only that stretch and return an :class:`Analysis` whose segment timestamps are
    on the window's timeline, with ``offset`` set to ``window.start``.
    """

    name: ClassVar[str]
    #: True if the backend can take a URL (http(s)/YouTube) without runpipe downloading it.
    accepts_urls: ClassVar[bool] = False
    limits: ClassVar[BackendLimits] = BackendLimits()
    #: Option names this backend accepts (from ``analyze.options`` and a task's ``options``).
    option_names: ClassVar[tuple[str, ...]] = ()
    #: The component's options object (see :mod:`runpipe.options`); with one, ``option_names``
    #: is not read and ``self.settings`` holds the validated, typed values.
    Options: ClassVar[type | None] = None
    #: Rank for ``backend: auto``: the highest-ranked backend whose :meth:`unavailable_reason`
    #: is None is chosen. None (the default): only used when a pipeline names it.
    auto_rank: ClassVar[int | None] = None

    def __init__(self, options: Mapping[str, Any] | None = None):
        take_options(self, f"backend {self.name}", options)

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """None when the backend can run here, else why not and how to fix it (``backend:
        auto`` skips a backend that cannot run and lists these reasons when none can)."""
        return None

    @classmethod
    def schemas(cls) -> frozenset[str] | None:
        """Names of the schemas this backend can fill (``transcript``, ...), or None for any JSON
        Schema (a model told the schema). ``runpipe validate`` rejects a task whose backend,
        or with ``backend: auto`` every backend that takes part, cannot fill its schema."""
        return None

    def warm_up(self) -> None:
        """Load models / open clients. Called once per engine before first use."""

    @property
    def parallelism(self) -> int | None:
        """How many analyze calls the engine should keep in flight at once (None: the run's
        concurrency). A backend that gathers requests into batch jobs asks for more."""
        return None

    def window_limits(self, task: Task) -> BackendLimits:
        """The limits that decide how ``task``'s audio is cut into windows (default: :attr:`limits`).
        A backend answering a task over the whole recording at once (Gemini's questions, asked
        against one upload) returns limits without a preferred window."""
        return self.limits

    def check_task(self, task: Task) -> None:
        """Raise :class:`~runpipe.errors.BackendUnavailable` when ``task`` cannot run here (e.g. its
        model does not exist), before any input is processed. Called once per task and run."""

    @abstractmethod
    def analyze(self, audio: AudioFile, task: Task, *, window: TimeRange | None = None) -> Analysis:
        """Run ``task`` on ``audio`` (or on ``window`` of it) and return a validated answer."""

    def estimate(self, audio: AudioFile, task: Task) -> Estimate:
        """What ``task`` on ``audio`` would cost, without a request or loaded models
        (``runpipe estimate``; called on an instance that was not warmed up). The default: the
        audio stays on this machine and costs no tokens."""
        return Estimate()

    def count_tokens(self, audio: AudioFile, task: Task) -> int | None:
        """Ask the backend how many input tokens ``task`` on ``audio`` costs (None: cannot tell)."""
        return None

    def close(self) -> None:
        """Release what the backend holds for this engine (e.g. delete uploaded files)."""


@dataclass(frozen=True, slots=True)
class Prompt:
    """A named prompt: the instruction text and the response schema it asks for.

    ``schema`` is the name of a schema in ``schemas/`` (``"transcript"`` means
    ``schemas/transcript.schema.json``) or a JSON Schema mapping.
    """

    name: str
    text: str
    schema: str | Mapping[str, Any]
    system_instruction: str | None = None
    description: str = ""
    extras: Mapping[str, Any] = field(default_factory=dict)


class PostProcessor(ABC):
    """One named post-processing step: takes a Document, returns a new one."""

    name: ClassVar[str]
    option_names: ClassVar[tuple[str, ...]] = ()
    #: The component's options object (see :mod:`runpipe.options`); with one, ``option_names``
    #: is not read and ``self.settings`` holds the validated, typed values.
    Options: ClassVar[type | None] = None
    #: Run this step for pipelines that have no ``stages.postprocess`` (a pipeline that lists
    #: steps gets exactly those). Default steps run in the order their plugins registered.
    on_by_default: ClassVar[bool] = False

    def __init__(self, options: Mapping[str, Any] | None = None):
        take_options(self, f"post-processor {self.name}", options)

    def warm_up(self) -> None:
        """Load what the step needs, once per engine."""

    @abstractmethod
    def process(self, document: Document) -> Document:
        """Return the processed document (use ``dataclasses.replace``; never mutate)."""


class Exporter(ABC):
    """Renders a Document as one output format. The engine writes the file atomically."""

    format: ClassVar[str]  # name used in pipelines: "srt"
    suffix: ClassVar[str]  # file suffix: ".srt"
    description: ClassVar[str] = ""
    option_names: ClassVar[tuple[str, ...]] = ()
    #: The component's options object (see :mod:`runpipe.options`); with one, ``option_names``
    #: is not read and ``self.settings`` holds the validated, typed values.
    Options: ClassVar[type | None] = None

    def __init__(self, options: Mapping[str, Any] | None = None):
        take_options(self, f"export format {self.format}", options)

    @abstractmethod
    def render(self, document: Document) -> str | bytes:
        """Return the file's content. Pure: same document, same bytes."""

    def render_index(self, run: RunResult, links: Mapping[str, str]) -> str | bytes | None:
        """Optionally render one page for the whole batch (``links``: input uri -> file name)."""
        return None


class Executor(ABC):
    """Runs the per-input work of a batch (local threads, a cluster, ...)."""

    name: ClassVar[str]
    option_names: ClassVar[tuple[str, ...]] = ()
    #: The component's options object (see :mod:`runpipe.options`); with one, ``option_names``
    #: is not read and ``self.settings`` holds the validated, typed values.
    Options: ClassVar[type | None] = None

    def __init__(self, options: Mapping[str, Any] | None = None):
        take_options(self, f"executor {self.name}", options)

    @abstractmethod
    def map(self, engine: Any, run: Any, items: list[MediaItem], concurrency: int) -> Iterable[Any]:
        """Process every item (``runpipe.runner.process_input``) and yield the InputResults."""
