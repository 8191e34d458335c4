"""The ``dask`` executor: each input's stages run on a Dask distributed cluster.

Why Dask distributed rather than Ray: it is pure pip (no native runtime, no separate object
store or dashboard daemon to keep alive), it is light enough to be an optional extra, and
``LocalCluster`` starts real worker processes on one machine for tests with exactly the
``Client`` API used against a real cluster (``dask scheduler`` + ``dask worker`` on each host).

Nothing heavy crosses the wire. The driver sends a :class:`WorkerJob` (pipeline as a dict,
resolved tasks, run id, output folder, store path and how to rebuild the driver's plugins);
each worker process builds its own :class:`~runpipe.engine.Engine` once per recipe, runs
:func:`runpipe.runner.process_input` and sends back the :class:`InputResult` and the progress
events the input produced, which the driver replays to its subscribers.

Workers must see the same files as the driver (inputs, output folder, run store, the
normalized-audio cache under ``RUNPIPE_USER_PATH``): on one machine they do; on a cluster,
use a shared filesystem and install runpipe and the same plugins on every worker.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Iterator

from runpipe.errors import PluginError, RunpipeError, describe
from runpipe.hookspecs import hookimpl
from runpipe.interfaces import Executor
from runpipe.model import InputResult, MediaItem, Task
from runpipe.options import option
from runpipe.pipeline.spec import Pipeline
from runpipe.plugin_manager import DEFAULT_PLUGINS, ENTRYPOINT_GROUP
from runpipe.run import ProgressEvent, RunContext

if TYPE_CHECKING:  # pragma: no cover
    from runpipe.engine import Engine

ADDRESS_ENV = "RUNPIPE_DASK_ADDRESS"
PLUGIN_NAME = __name__


class ExecutorUnavailable(RunpipeError):
    """The executor cannot run here (missing package, unreachable scheduler); says how to fix it."""


# -- what travels to the workers ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EngineRecipe:
    """How a worker rebuilds the driver's engine: the same plugins under the same names.

    Built-in and entry-point plugins are found by name on the worker; plugins handed to the
    driver's engine as objects travel as ``module:attribute`` import paths.
    """

    plugin_names: tuple[str, ...]  # every plugin the driver registered, in order
    imported: tuple[tuple[str, str], ...]  # (registered name, import path) of the extra ones
    store_path: str
    user_path: str | None  # RUNPIPE_USER_PATH: where the normalized-audio cache lives
    default_postprocess: bool  # whether pipelines without steps get the default ones

    @classmethod
    def of(cls, engine: "Engine") -> "EngineRecipe":
        extras = {info.name for info in engine.plugins() if info.dist is None}
        names = tuple(name for name, _ in engine.pm.list_name_plugin() if name is not None)
        return cls(
            plugin_names=names,
            imported=tuple((name, _import_path(name, engine.pm.get_plugin(name))) for name in names if name in extras),
            store_path=str(engine.store.path),
            user_path=os.environ.get("RUNPIPE_USER_PATH"),
            default_postprocess=engine.default_postprocess,
        )

    def build(self) -> "Engine":
        from runpipe.engine import Engine

        wanted = set(self.plugin_names)
        installed = [ep.name for ep in metadata.entry_points(group=ENTRYPOINT_GROUP)]
        blocked = [name for name in (*DEFAULT_PLUGINS, *installed) if name not in wanted]
        engine = Engine(load_entrypoints=True, blocked=blocked, store_path=Path(self.store_path),
                        default_postprocess=self.default_postprocess)
        for name, path in self.imported:
            engine.register(_import_object(name, path), name)
        loaded = {name for name, _ in engine.pm.list_name_plugin()}
        missing = [name for name in self.plugin_names if name not in loaded]
        if missing:
            engine.close()
            raise PluginError(
                f"plugin(s) {', '.join(missing)} are loaded on the driver but not on this Dask worker; "
                "install the same plugins on every worker"
            )
        return engine


@dataclass(frozen=True, slots=True)
class WorkerJob:
    """Everything a worker needs to process inputs of one run; small and picklable.

    ``tasks`` travel resolved: they already carry the run's backend override (which the
    RunContext does not keep separately) and their schemas, so workers read no schema files.
    """

    engine: EngineRecipe
    pipeline: str  # Pipeline.to_dict() as JSON
    pipeline_source: str | None
    tasks: tuple[Task, ...]
    run_id: str
    output_dir: str
    force: bool
    output_names: tuple[tuple[str, str], ...]  # RunContext.output_names, planned on the driver

    @classmethod
    def of(cls, engine: "Engine", run: RunContext) -> "WorkerJob":
        pipeline: Pipeline = run.pipeline
        return cls(
            engine=EngineRecipe.of(engine),
            pipeline=json.dumps(pipeline.to_dict()),
            pipeline_source=str(pipeline.source) if pipeline.source else None,
            tasks=run.tasks,
            run_id=run.run_id,
            output_dir=str(run.output_dir),
            force=run.force,
            output_names=tuple(run.output_names.items()),
        )


@dataclass(frozen=True, slots=True)
class WorkerOutcome:
    result: InputResult
    events: tuple[ProgressEvent, ...]  # what the input emitted on the worker, in order


def _import_path(name: str, plugin: object) -> str:
    """``module`` or ``module:attribute`` under which a worker can import ``plugin``."""
    if isinstance(plugin, ModuleType):
        module_name, attribute = plugin.__name__, None
    else:
        module_name = type(plugin).__module__
        module = sys.modules.get(module_name)
        attribute = next((attr for attr, value in vars(module).items() if value is plugin), None) if module else None
        if attribute is None:
            raise PluginError(
                f"plugin {name} cannot be sent to Dask workers: it is not a module-level object; "
                "expose it as a module attribute (module:attribute) or package it with a `runpipe` entry point"
            )
    if module_name == "__main__":
        raise PluginError(f"plugin {name} lives in __main__, which Dask workers cannot import; move it to a module")
    return f"{module_name}:{attribute}" if attribute else module_name


def _import_object(name: str, path: str) -> object:
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attribute) if attribute else module
    except Exception as exc:
        raise PluginError(
            f"plugin {name} ({path}) cannot be imported on this Dask worker: {describe(exc)}; "
            "install it on the workers or put it on their PYTHONPATH"
        ) from exc


# -- the worker side ---------------------------------------------------------------------

# One engine per recipe and worker process: plugins load and backends warm up once, not per
# input. They live as long as the worker process, like the driver's engine lives for a run.
_engines: dict[EngineRecipe, "Engine"] = {}
_engines_lock = threading.Lock()


def _worker_engine(recipe: EngineRecipe) -> "Engine":
    with _engines_lock:
        engine = _engines.get(recipe)
        if engine is None:
            engine = _engines[recipe] = recipe.build()
        return engine


def process_on_worker(job: WorkerJob, item: MediaItem) -> WorkerOutcome:
    """Runs in a Dask worker process: all stages for one input."""
    from runpipe.runner import process_input

    if job.engine.user_path:
        os.environ["RUNPIPE_USER_PATH"] = job.engine.user_path
    engine = _worker_engine(job.engine)
    source = Path(job.pipeline_source) if job.pipeline_source else None
    # from_dict rather than load_dict: the driver validated this dict, and keeping `source`
    # keeps relative paths and the file name in messages identical to the driver's.
    pipeline = Pipeline.from_dict(json.loads(job.pipeline), source=source)
    events: list[ProgressEvent] = []
    run = RunContext(engine, pipeline, job.tasks, Path(job.output_dir), engine.store, job.run_id,
                     force=job.force, emit=events.append, output_names=dict(job.output_names))
    result = process_input(engine, run, item)
    return WorkerOutcome(result, tuple(events))


# -- the driver side ---------------------------------------------------------------------


def _import_distributed() -> ModuleType:
    try:
        import distributed
    except ImportError as exc:
        raise ExecutorUnavailable(
            f"the dask executor needs Dask distributed ({exc}); install it with: pip install 'runpipe[distributed]'"
        ) from exc
    return distributed


@contextmanager
def _client(distributed: ModuleType, address: str | None) -> Iterator[Any]:
    """A client of the cluster at ``address``, or of a LocalCluster that lives for this run."""
    if address:
        try:
            client = distributed.Client(address, set_as_default=False)
        except OSError as exc:
            raise ExecutorUnavailable(f"cannot reach the Dask scheduler at {address}: {exc}") from exc
        with client:
            yield client
        return
    # No dashboard for a cluster that lives one run; its HTTP endpoint (health, metrics) takes
    # a free port so concurrent runs do not compete for 8787.
    with distributed.LocalCluster(
        n_workers=os.cpu_count() or 1, processes=True, threads_per_worker=1,
        dashboard_address=None, scheduler_kwargs={"dashboard_address": ":0"},
    ) as cluster, distributed.Client(cluster, set_as_default=False) as client:
        yield client


@dataclass(frozen=True)
class DaskOptions:
    address: str | None = option(None, f"the Dask scheduler, tcp://host:8786 (default ${ADDRESS_ENV}, else a local cluster)")


class DaskExecutor(Executor):
    """Runs inputs on Dask workers, at most ``concurrency`` of them in flight at once.

    ``address``: the scheduler (``tcp://host:8786``); default ``$RUNPIPE_DASK_ADDRESS``, else a
    LocalCluster with one single-threaded worker process per core, closed after the run.
    """

    name = "dask"
    Options = DaskOptions
    settings: DaskOptions

    def map(self, engine: "Engine", run: RunContext, items: list[MediaItem], concurrency: int) -> list[InputResult]:
        distributed = _import_distributed()
        if not items:
            return []
        job = WorkerJob.of(engine, run)  # before connecting: a plugin workers cannot get fails fast
        address = self.settings.address or os.environ.get(ADDRESS_ENV)
        results: dict[int, InputResult] = {}
        with _client(distributed, address) as client:
            waiting = iter(enumerate(items))
            index_of: dict[Any, int] = {}

            def submit_next() -> Any | None:
                index, item = next(waiting, (None, None))
                if item is None:
                    return None
                future = client.submit(process_on_worker, job, item, pure=False)
                index_of[future] = index
                return future

            first = [f for f in (submit_next() for _ in range(concurrency)) if f is not None]
            in_flight = distributed.as_completed(first, loop=client.loop)  # this client is not the global default
            for future in in_flight:
                index = index_of.pop(future)
                results[index] = self._collect(future, items[index], run)
                following = submit_next()
                if following is not None:
                    in_flight.add(following)
        return [results[index] for index in range(len(items))]

    @staticmethod
    def _collect(future: Any, item: MediaItem, run: RunContext) -> InputResult:
        """The input's result, its events replayed on the driver; a lost task is a failed input."""
        try:
            outcome: WorkerOutcome = future.result()
        except Exception as exc:  # the worker died or could not set up: this input failed, the batch goes on
            error = f"{item.name}: executor failed (plugin {PLUGIN_NAME}): {describe(exc)}"
            result = InputResult(item, "failed", error=error, failed_stage="executor", failed_plugin=PLUGIN_NAME)
            from runpipe.runner import record_input  # as process_input: the runner is loaded lazily

            record_input(run, result)
            run.emit(ProgressEvent("input_done", item=item, detail="failed", data={"error": error}))
            return result
        for event in outcome.events:
            run.emit(event)
        return outcome.result


@hookimpl
def runpipe_register_executors(register):
    register(DaskExecutor)
