"""The Engine: one plugin manager, the registries it fills, and runs of pipelines.

Embedding example::

    from runpipe import Engine

    with Engine() as engine:
        pipeline = engine.load("pipelines/podcast.yaml")
        result = engine.run(pipeline, ["episode.mp3"], output_dir="out")
        for item in result.inputs:
            print(item.item.name, item.status, [a.path for a in item.artifacts])
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from types import TracebackType
from typing import Any, Callable, Iterable, Mapping, Sequence

from runpipe.errors import BackendUnavailable, PipelineConfigError
from runpipe.interfaces import Backend, Source
from runpipe.model import RunResult, Task
from runpipe.paths import user_dir
from runpipe.pipeline.loader import load_pipeline, pipeline_from_dict
from runpipe.pipeline.spec import NamedOptions, Pipeline
from runpipe.plugin_manager import PluginInfo, PluginLoader, env_flag, plugin_of
from runpipe.registry import REGISTRATION_HOOKS, Registries, Registry
from runpipe.run import ProgressEvent, RunContext
from runpipe.store import RunStore
from runpipe.tasks import resolve_tasks


class Engine:
    """Loads plugins and runs pipelines. Each engine owns its plugin manager.

    :param plugins: extra plugin objects (modules or instances) to register, e.g. in tests.
    :param load_entrypoints: load third-party plugins from the ``runpipe`` entry-point group
        (default: yes, unless ``RUNPIPE_DISABLE_PLUGIN_AUTOLOAD=1``). ``RUNPIPE_LOAD_PLUGINS``
        (comma-separated distribution names) limits which are loaded.
    :param blocked: plugin names not to load (``-p no:NAME`` on the CLI).
    :param store_path: the SQLite run store (default: ``user_dir()/runs.sqlite``).
    :param default_postprocess: run the steps that are on by default for pipelines that list no
        ``stages.postprocess`` (``runpipe.testing.make_engine`` turns this off unless asked).
    """

    def __init__(
        self,
        plugins: Iterable[object] = (),
        *,
        load_entrypoints: bool | None = None,
        blocked: Iterable[str] = (),
        store_path: Path | None = None,
        default_postprocess: bool = True,
    ):
        self._loader = PluginLoader(blocked)
        self.pm = self._loader.pm
        if env_flag("RUNPIPE_TRACE_HOOKS"):
            self._loader.enable_tracing()
        self.registries = Registries.empty()
        self._registered: dict[str, dict[str, list[str]]] = {}
        self._components: dict[tuple[str, str, str], Any] = {}
        self._components_lock = threading.Lock()
        self._subscribers: list[Callable[[ProgressEvent], None]] = []
        self._store_path = store_path
        self.default_postprocess = default_postprocess
        self._store: RunStore | None = None

        self._loader.load_builtins()
        if load_entrypoints is None:
            load_entrypoints = not env_flag("RUNPIPE_DISABLE_PLUGIN_AUTOLOAD")
        if load_entrypoints:
            only = os.environ.get("RUNPIPE_LOAD_PLUGINS")
            self._loader.load_entrypoints([n.strip() for n in only.split(",") if n.strip()] if only else None)
        for index, plugin in enumerate(plugins):
            name = getattr(plugin, "__name__", None) or f"{type(plugin).__name__}-{index}"
            self._loader.register(plugin, name, dist=None, version=None)
        for name, plugin in self.pm.list_name_plugin():
            self._collect_registrations(name, plugin)
        self.pm.hook.runpipe_configure.call_historic(kwargs={"engine": self})

    # -- plugins ----------------------------------------------------------------------

    def register(self, plugin: object, name: str | None = None) -> None:
        """Register one more plugin after construction (it still gets ``runpipe_configure``)."""
        name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        self._loader.register(plugin, name, dist=None, version=None)
        self._collect_registrations(name, plugin)

    def _collect_registrations(self, plugin_name: str, plugin: object) -> None:
        """Call ``plugin``'s registration hooks through pluggy, crediting what it registers to it.

        Each hook is called on a subset of the plugins: this one plus every wrapper, so tracing
        (``RUNPIPE_TRACE_HOOKS``) and ``wrapper=True`` implementations see registration too.
        """
        dist, version = self._loader.dists.get(plugin_name, (None, None))
        for kind, hook_name in REGISTRATION_HOOKS.items():
            registry: Registry[Any] = getattr(self.registries, kind)
            impls = getattr(self.pm.hook, hook_name).get_hookimpls()
            if not any(impl.plugin is plugin for impl in impls):
                continue
            others = [impl.plugin for impl in impls if impl.plugin is not plugin and not (impl.wrapper or impl.hookwrapper)]

            def register(value: Any, _registry: Registry[Any] = registry, _kind: str = kind) -> None:
                _registry.add(value, plugin=plugin_name, dist=dist, version=version)
                self._registered.setdefault(plugin_name, {}).setdefault(_kind, []).append(
                    getattr(value, "format", None) or value.name
                )

            self.pm.subset_hook_caller(hook_name, remove_plugins=others)(register=register)

    def plugins(self) -> list[PluginInfo]:
        return self._loader.infos(self._registered)

    @property
    def plugin_failures(self):
        return list(self._loader.failures)

    def plugin_of(self, exc: BaseException) -> str | None:
        """Name of the plugin whose code raised ``exc`` (innermost frame that belongs to one)."""
        return plugin_of(self.pm, [getattr(self.registries, kind) for kind in REGISTRATION_HOOKS], exc)

    # -- components ---------------------------------------------------------------------

    def sources(self) -> list[Source]:
        return [self.component("sources", reg.name, {}) for reg in self.registries.sources]

    def component(self, kind: str, name: str, options: Mapping[str, Any]) -> Any:
        """The shared, warmed-up instance of a registered component with these options."""
        key = (kind, name, repr(sorted(options.items())))
        with self._components_lock:
            instance = self._components.get(key)
            if instance is None:
                cls = getattr(self.registries, kind).get(name)
                instance = cls(options)
                warm_up = getattr(instance, "warm_up", None)
                if warm_up is not None:
                    warm_up()
                self._components[key] = instance
            return instance

    def resolve_backend(self, name: str) -> str:
        """``auto`` -> the highest-ranked backend (``Backend.auto_rank``) that can run here."""
        if name != "auto":
            self.registries.backends.registration(name)  # unknown names fail here, clearly
            return name
        candidates = sorted(
            (reg for reg in self.registries.backends if reg.value.auto_rank is not None),
            key=lambda reg: -reg.value.auto_rank,  # stable: equal ranks keep registration order
        )
        if not candidates:
            raise BackendUnavailable(
                "no registered backend takes part in `backend: auto`; name one "
                f"(registered: {', '.join(self.registries.backends.names()) or 'none'})"
            )
        reasons = []
        for reg in candidates:
            reason = reg.value.unavailable_reason()
            if reason is None:
                return reg.name
            reasons.append(f"{reg.name}: {reason}")
        raise BackendUnavailable("no analysis backend can run here:\n  " + "\n  ".join(reasons))

    def backend(self, name: str, options: Mapping[str, Any] | None = None) -> Backend:
        resolved = self.resolve_backend(name)
        reason = self.registries.backends.get(resolved).unavailable_reason()
        if reason:
            raise BackendUnavailable(f"backend {resolved}: {reason}")
        return self.component("backends", resolved, options or {})

    def postprocess_steps(self, pipeline: Pipeline) -> tuple[NamedOptions, ...]:
        """The pipeline's own steps, or, when it lists none, every registered step that is on by
        default (``PostProcessor.on_by_default``), in registration order."""
        if pipeline.postprocess is not None:
            return pipeline.postprocess
        if not self.default_postprocess:
            return ()
        return tuple(NamedOptions(reg.name) for reg in self.registries.postprocessors if reg.value.on_by_default)

    @property
    def store(self) -> RunStore:
        if self._store is None:
            self._store = RunStore(self._store_path or user_dir() / "runs.sqlite")
        return self._store

    # -- pipelines ----------------------------------------------------------------------

    def load(self, location: str | Path) -> Pipeline:
        """Load and validate a pipeline file (or the name of a built-in pipeline)."""
        pipeline = load_pipeline(location)
        self.check(pipeline)
        return pipeline

    def load_dict(self, data: Mapping[str, Any], base_dir: Path | None = None) -> Pipeline:
        pipeline = pipeline_from_dict(data, base_dir=base_dir)
        self.check(pipeline)
        return pipeline

    def check(self, pipeline: Pipeline, backend: str | None = None) -> tuple[Task, ...]:
        """Check that every name the pipeline uses is registered and every option is known;
        returns the pipeline's tasks, resolved."""
        where = str(pipeline.source or "<pipeline>")
        tasks = resolve_tasks(pipeline, self.registries.prompts, backend)
        for index, task in enumerate(tasks):
            if task.backend != "auto" and task.backend not in self.registries.backends:
                raise PipelineConfigError(
                    f"{where}: stages.analyze.tasks[{index}].backend: unknown backend {task.backend!r}; "
                    f"registered: {', '.join(self.registries.backends.names())}"
                )
            self._check_fillable(task, f"{where}: stages.analyze.tasks[{index}]")
        checks = (
            ("postprocessors", "stages.postprocess.steps", self.postprocess_steps(pipeline)),
            ("exporters", "stages.export.formats", pipeline.export.formats),
        )
        for kind, path, entries in checks:
            registry = getattr(self.registries, kind)
            for index, entry in enumerate(entries):
                if entry.name not in registry:
                    raise PipelineConfigError(
                        f"{where}: {path}[{index}]: unknown {registry.kind} {entry.name!r}; registered: {', '.join(registry.names())}"
                    )
                try:
                    registry.get(entry.name)(entry.options)  # constructors validate options cheaply
                except PipelineConfigError as exc:
                    raise PipelineConfigError(f"{where}: {path}[{index}]: {exc}") from None
        for name, options in pipeline.analyze.backends.items():
            if name not in self.registries.backends:
                raise PipelineConfigError(f"{where}: stages.analyze.backends.{name}: unknown backend {name!r}")
            try:
                self.registries.backends.get(name)(options)
            except PipelineConfigError as exc:
                raise PipelineConfigError(f"{where}: stages.analyze.backends.{name}: {exc}") from None
        return tasks

    def _check_fillable(self, task: Task, where: str) -> None:
        """A task's schema must be one its backend (with ``auto``: one of the candidates) fills."""
        backends = self.registries.backends
        names = [task.backend] if task.backend != "auto" else [r.name for r in backends if r.value.auto_rank is not None]
        fills = {name: backends.get(name).schemas() for name in names}
        if not names or any(schemas is None or task.schema_name in schemas for schemas in fills.values()):
            return
        which = ", ".join(f"{name} fills {', '.join(sorted(schemas))}" for name, schemas in fills.items())
        raise PipelineConfigError(f"{where}: no available backend can answer schema {task.schema_name!r} ({which})")

    def _check_writes(self, task: Task, name: str) -> None:
        """The backend ``backend: auto`` resolved to must fill the task's schema: offline, a
        task only Gemini answers fails in one line saying so, not input by input."""
        backends = self.registries.backends
        schemas = backends.get(name).schemas()
        if schemas is None or task.schema_name in schemas:
            return
        able = [r.name for r in backends if r.value.schemas() is None or task.schema_name in r.value.schemas()]
        reasons = "; ".join(f"{n}: {backends.get(n).unavailable_reason()}" for n in able if backends.get(n).unavailable_reason())
        what = task.schema.get("title") or f"answers in schema {task.schema_name!r}"
        raise BackendUnavailable(
            f"task {task.name}: {what} need {' or '.join(able) or 'another backend'}; backend {name} writes only "
            f"{', '.join(sorted(schemas))}" + (f" ({reasons})" if reasons else "")
        )

    def subscribe(self, callback: Callable[[ProgressEvent], None]) -> None:
        """Call ``callback(event)`` for every :class:`ProgressEvent` of later runs."""
        self._subscribers.append(callback)

    def _emit(self, event: ProgressEvent) -> None:
        for callback in self._subscribers:
            callback(event)

    def run(
        self,
        pipeline: Pipeline | str | Path,
        inputs: Sequence[str | Path] | None = None,
        *,
        output_dir: str | Path | None = None,
        backend: str | None = None,
        force: bool = False,
        concurrency: int | None = None,
        executor: str | None = None,
        executor_options: Mapping[str, Any] | None = None,
    ) -> RunResult:
        """Run ``pipeline`` on ``inputs`` (default: the pipeline's own ``stages.ingest.inputs``).

        Failed inputs are reported in the result; they never stop the others. ``executor``
        names a registered executor (``dask``) to run the per-input work on, with its options.
        """
        from runpipe.runner import run_pipeline

        if not isinstance(pipeline, Pipeline):
            pipeline = self.load(pipeline)
        tasks = self.check(pipeline, backend)
        for task in tasks:  # a missing key or model fails the run up front, not input by input
            name = self.resolve_backend(task.backend)
            reason = self.registries.backends.get(name).unavailable_reason()
            if reason:
                raise BackendUnavailable(f"backend {name}: {reason}")
            backend_cls = self.registries.backends.get(name)
            self._check_writes(task, name)
            # Building a backend warms it up (the local one loads Whisper): only a backend that
            # checks tasks is built before the inputs are known to exist.
            if backend_cls.check_task is not Backend.check_task:
                self.backend(name, pipeline.analyze.backends.get(name, {})).check_task(task)
        out = Path(output_dir) if output_dir is not None else Path(pipeline.export.output_dir)
        locations = [str(i) for i in inputs] if inputs else [
            str(pipeline.base_dir / loc) if "://" not in loc else loc for loc in pipeline.ingest.inputs
        ]
        if not locations:  # before the run is recorded: nothing ran, so `runpipe status` shows nothing
            raise PipelineConfigError("no inputs: give files, folders, globs or URLs on the command line or in stages.ingest.inputs")
        run = RunContext(self, pipeline, tasks, out, self.store, self.store.start_run(pipeline.name), force=force, emit=self._emit)
        return run_pipeline(self, run, locations, concurrency=concurrency or pipeline.concurrency,
                            executor=executor, executor_options=dict(executor_options or {}))

    # -- lifetime -----------------------------------------------------------------------

    def close(self) -> None:
        """Let components release what they hold (uploaded files, clients)."""
        with self._components_lock:
            components, self._components = list(self._components.values()), {}
        for component in components:
            close = getattr(component, "close", None)
            if close is not None:
                close()
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
