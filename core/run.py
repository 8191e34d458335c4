"""The context one run hands to every hook: the pipeline, its resolved tasks, where outputs
go, the run store, and access to the engine's shared components (backends load once)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping

from runpipe.interfaces import Backend, Exporter, PostProcessor, Source
from runpipe.model import MediaItem, Task
from runpipe.pipeline.spec import NamedOptions, Pipeline
from runpipe.store import RunStore

if TYPE_CHECKING:  # pragma: no cover
    from runpipe.engine import Engine

EventKind = Literal["run_start", "input_start", "stage_start", "stage_done", "input_done", "run_done", "message"]


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """What subscribers (progress bars, embedding tools) hear about a run."""

    kind: EventKind
    item: MediaItem | None = None
    stage: str | None = None
    detail: str | None = None
    total: int | None = None  # for run_start: number of inputs
    data: dict[str, Any] = field(default_factory=dict)


class RunContext:
    """Public view of one run. Hooks get this object; they never reach into the engine."""

    def __init__(
        self,
        engine: "Engine",
        pipeline: Pipeline,
        tasks: tuple[Task, ...],
        output_dir: Path,
        store: RunStore,
        run_id: str,
        *,
        force: bool = False,
        emit: Callable[[ProgressEvent], None] = lambda event: None,
        output_names: Mapping[str, str] | None = None,
        output_stems: Mapping[str, str] | None = None,
    ):
        self._engine = engine
        self.pipeline = pipeline
        self.tasks = tasks
        self.output_dir = output_dir
        self.store = store
        self.run_id = run_id
        self.force = force  # ignore stored results and redo every stage
        self._emit = emit
        # input uri -> what its output names get appended so no two inputs of the batch write
        # the same file; planned by the runner after ingest (outputs.plan_output_names)
        self.output_names: Mapping[str, str] = dict(output_names or {})
        # input uri -> the name its outputs take instead of the pipeline's template
        # (``runpipe export`` names them after the result file it re-exports)
        self.output_stems: Mapping[str, str] = dict(output_stems or {})
        self.interrupted = threading.Event()  # set on Ctrl-C: failures after it are not the inputs' fault

    @property
    def use_cache(self) -> bool:
        return self.pipeline.cache and not self.force

    def emit(self, event: ProgressEvent) -> None:
        self._emit(event)

    def message(self, text: str, item: MediaItem | None = None) -> None:
        """A line for the run summary (e.g. "12 of 14 segments re-timed")."""
        self._emit(ProgressEvent("message", item=item, detail=text))

    def sources(self) -> list[Source]:
        return self._engine.sources()

    def backend(self, name: str) -> Backend:
        """The warmed-up backend called ``name`` (``auto`` resolved), shared across inputs."""
        return self._engine.backend(name, self.pipeline.analyze.backends.get(self._engine.resolve_backend(name), {}))

    def backend_name(self, name: str) -> str:
        return self._engine.resolve_backend(name)

    @property
    def postprocess_steps(self) -> tuple[NamedOptions, ...]:
        """The post-processing steps this run applies (the pipeline's, or the default ones)."""
        return self._engine.postprocess_steps(self.pipeline)

    def postprocessor(self, step: NamedOptions) -> PostProcessor:
        return self._engine.component("postprocessors", step.name, step.options)

    def exporter(self, fmt: NamedOptions) -> Exporter:
        return self._engine.component("exporters", fmt.name, fmt.options)

    def plugin_version(self, kind: str, name: str) -> str:
        """``plugin@version`` of whoever registered ``name``, for cache keys and provenance."""
        reg = getattr(self._engine.registries, kind).registration(name)
        return f"{reg.plugin}@{reg.version}"
