"""Every hook runpipe calls. Plugins implement them with ``@runpipe.hookimpl``.

Hook names start with ``runpipe_``; docs/hooks.md documents each (signature, when it is
called, what it returns, an example), and a test fails when the two disagree. Implementations declare only the arguments they use
(pluggy passes the rest by name), so new arguments can be added without breaking plugins.

Stage hooks are ``firstresult``: the built-in implementation is registered ``trylast``, so a
plugin can replace a stage by returning a value, or wrap it (``@hookimpl(wrapper=True)``,
``result = yield``) to cache, time or retry it without patching the engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    from runpipe.engine import Engine
    from runpipe.interfaces import Backend, Executor, Exporter, PostProcessor, Prompt, Source
    from runpipe.model import Analysis, Artifact, AudioFile, Document, InputResult, MediaItem, RunResult, Task
    from runpipe.run import RunContext

hookspec = pluggy.HookspecMarker("runpipe")
hookimpl = pluggy.HookimplMarker("runpipe")


# ---------------------------------------------------------------------------
# Registration: plugins hand over classes; the engine records who registered what.
# ---------------------------------------------------------------------------


@hookspec
def runpipe_register_sources(register: Callable[[type[Source]], None]) -> None:
    """Register input sources (:class:`runpipe.interfaces.Source` subclasses).

    :param register: call ``register(SourceClass)`` once per source.

    Sources are asked in registration order whether they claim a location; the first wins.
    """


@hookspec
def runpipe_register_backends(register: Callable[[type[Backend]], None]) -> None:
    """Register analysis backends (:class:`runpipe.interfaces.Backend` subclasses).

    :param register: call ``register(BackendClass)``; ``BackendClass.name`` is what pipelines
        write as ``backend:``. Two plugins registering the same name is an error naming both.

    A backend with an ``auto_rank`` competes for ``backend: auto`` like the built-ins do.
    """


@hookspec
def runpipe_register_prompts(register: Callable[[Prompt], None]) -> None:
    """Register named prompts (:class:`runpipe.interfaces.Prompt` instances).

    :param register: call ``register(Prompt(name=..., text=..., schema=...))``. Pipelines refer
        to the prompt by name in ``stages.analyze.tasks[].prompt``.
    """


@hookspec
def runpipe_register_postprocessors(register: Callable[[type[PostProcessor]], None]) -> None:
    """Register post-processing steps (:class:`runpipe.interfaces.PostProcessor` subclasses).

    :param register: call ``register(StepClass)``; pipelines list ``StepClass.name`` under
        ``stages.postprocess.steps``. A step with ``on_by_default = True`` also runs for
        pipelines that have no ``stages.postprocess``.
    """


@hookspec
def runpipe_register_exporters(register: Callable[[type[Exporter]], None]) -> None:
    """Register export formats (:class:`runpipe.interfaces.Exporter` subclasses).

    :param register: call ``register(ExporterClass)``; ``ExporterClass.format`` is the name
        pipelines use in ``stages.export.formats``.
    """


@hookspec
def runpipe_register_executors(register: Callable[[type[Executor]], None]) -> None:
    """Register executors that run a batch's per-input work (local threads, a cluster)."""


# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------


@hookspec(historic=True)
def runpipe_configure(engine: Engine) -> None:
    """Called once when an engine has loaded its plugins (historic: late plugins get it too).

    :param engine: the engine; read ``engine.registries`` here. No return value.
    """


# ---------------------------------------------------------------------------
# Stages, in the order they run for each input. Stops at first non-None result.
# ---------------------------------------------------------------------------


@hookspec(firstresult=True)
def runpipe_ingest(location: str, run: RunContext) -> Sequence[MediaItem] | None:
    """Expand one input location (path, folder, glob, URL) into media items.

    Stops at first non-None result. The built-in implementation asks the registered sources.
    """


@hookspec(firstresult=True)
def runpipe_normalize(item: MediaItem, run: RunContext) -> AudioFile | None:
    """Turn a media item into audio a backend accepts (probe, extract, downmix, resample).

    Stops at first non-None result. The built-in implementation uses ffmpeg and caches the
    normalized file by content hash. Raise :class:`runpipe.errors.MediaError` for bad media.
    """


@hookspec(firstresult=True)
def runpipe_analyze(audio: AudioFile, task: Task, run: RunContext) -> Analysis | None:
    """Answer one analysis task about the normalized audio.

    Stops at first non-None result. The built-in implementation picks the task's backend,
    splits long audio into windows, and stitches the answers back onto one timeline.
    """


@hookspec(firstresult=True)
def runpipe_postprocess(analysis: Analysis, audio: AudioFile, task: Task, run: RunContext) -> Document | None:
    """Turn an analysis into a :class:`Document` and apply the pipeline's post-processing steps.

    Stops at first non-None result.
    """


@hookspec(firstresult=True)
def runpipe_export(document: Document, run: RunContext) -> Sequence[Artifact] | None:
    """Write the pipeline's export formats for one document and return what was written (in a
    run, and in ``runpipe export``, which names the files after the result: ``run.output_stems``).

    Stops at first non-None result.
    """


# ---------------------------------------------------------------------------
# Lifecycle notifications: observe, never control. Return values are ignored.
# ---------------------------------------------------------------------------


@hookspec
def runpipe_run_start(run: RunContext, items: Sequence[MediaItem]) -> None:
    """A run is about to process ``items``."""


@hookspec
def runpipe_stage_finish(stage: str, item: MediaItem, value: Any, run: RunContext) -> None:
    """``stage`` finished for ``item`` with ``value`` (the stage's output); in a run, and in the
    stages ``runpipe estimate`` (normalize) and ``runpipe export`` (export) go through."""


@hookspec
def runpipe_stage_error(stage: str, item: MediaItem, error: BaseException, run: RunContext) -> None:
    """``stage`` failed for ``item``; the other inputs carry on."""


@hookspec
def runpipe_input_finish(result: InputResult, run: RunContext) -> None:
    """Everything for one input is done (or failed)."""


@hookspec
def runpipe_run_finish(result: RunResult, run: RunContext) -> None:
    """The whole run is done."""
