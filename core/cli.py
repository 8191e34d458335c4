"""The ``runpipe`` command.

Exit codes: 0 everything done; 1 some inputs failed (the others finished); 2 bad command line
or invalid pipeline; 3 nothing could run here (no backend, no ffmpeg, ...); 130 interrupted.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any, Callable

import click

from runpipe.errors import BackendUnavailable, PipelineConfigError, RunpipeError

EXIT_FAILED_INPUTS, EXIT_CONFIG, EXIT_ENVIRONMENT, EXIT_INTERRUPTED = 1, 2, 3, 130

MAIN_HELP = """\
Turn audio and video into structured understanding: transcripts with timestamps,
speakers, languages, translations, emotions, summaries.

\b
  runpipe pipelines/podcast.yaml episode.mp3      run a pipeline on inputs
  runpipe podcast episode.mp3 --backend gemini    a built-in pipeline, by name
  runpipe estimate podcast episode.mp3            tokens and request size, no backend call
  runpipe podcast episode.mp3 -m gemini-3.7-flash another Gemini model
  runpipe models                                  the Gemini models your key can use
  runpipe export out/episode.json --format srt --rename "Speaker 1=Ada"
  runpipe validate pipelines/*.yaml
  runpipe plugins --json
  runpipe schema speakers                          a component's options, as JSON Schema

Inputs are files, folders, globs or http(s)/YouTube URLs. The backend is Gemini when
GEMINI_API_KEY (or GOOGLE_API_KEY) is set, else the offline models (`--backend local`).

\b
Exit codes: 0 all inputs done, 1 some inputs failed (the rest finished),
2 bad command line or pipeline, 3 nothing could run here, 130 interrupted.
"""


VERBOSITY = "runpipe.verbosity"


def _add_verbosity(ctx: click.Context, _param: click.Parameter, count: int) -> None:
    root = ctx.find_root()
    root.meta[VERBOSITY] = root.meta.get(VERBOSITY, 0) + (count or 0)
    verbose = root.meta[VERBOSITY]
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger().setLevel(logging.WARNING if not verbose else (logging.INFO if verbose == 1 else logging.DEBUG))


def _verbosity() -> int:
    return click.get_current_context().find_root().meta.get(VERBOSITY, 0)


VERBOSE_OPTION = click.Option(
    ["-v", "--verbose"], count=True, expose_value=False, callback=_add_verbosity,
    help="More log output; tracebacks on errors. -vv for debug. Before or after the command.",
)


class VerboseGroup(click.Group):
    """Every command of the group takes ``-v`` too, so it works before and after the command."""

    def get_command(self, ctx: click.Context, cmd_name: str):
        command = super().get_command(ctx, cmd_name)
        if command is not None and VERBOSE_OPTION not in command.params:
            command.params.append(VERBOSE_OPTION)
        return command


class DefaultRunGroup(VerboseGroup):
    """``runpipe PIPELINE ...`` means ``runpipe run PIPELINE ...``."""

    def resolve_command(self, ctx: click.Context, args: list[str]):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            return "run", self.commands["run"], args
        return super().resolve_command(ctx, args)


def _fail(message: str, code: int) -> None:
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(code)


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Print runpipe's errors as one clear message (traceback only with -v)."""
    import functools

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        verbose = _verbosity()
        try:
            return func(*args, **kwargs)
        except KeyboardInterrupt:
            # A second Ctrl-C must not interrupt this, and exiting must not wait for threads
            # still inside a request: what finished is in the run store, the rerun resumes.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            click.secho("error: interrupted; rerun the same command to continue where it stopped", fg="red", err=True)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(EXIT_INTERRUPTED)
        except PipelineConfigError as exc:
            if verbose:
                raise
            _fail(str(exc), EXIT_CONFIG)
        except BackendUnavailable as exc:
            if verbose:
                raise
            _fail(str(exc), EXIT_ENVIRONMENT)
        except RunpipeError as exc:
            if verbose:
                raise
            _fail(str(exc), EXIT_ENVIRONMENT)

    return wrapper


def _key_values(pairs: tuple[str, ...], flag: str) -> dict[str, str]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise PipelineConfigError(f"{flag} {pair!r}: expected KEY=VALUE")
        options[key.strip()] = value.strip()
    return options


PLUGIN_ARGS = "runpipe.plugin_args"


def _with_model(pipeline, model: str | None):
    """``pipeline`` with ``-m/--model`` as its model (tasks that name their own model keep it)."""
    import dataclasses

    if not model:
        return pipeline
    return dataclasses.replace(pipeline, analyze=dataclasses.replace(pipeline.analyze, model=model))


def _collect_plugin_arg(ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> None:
    ctx.find_root().meta.setdefault(PLUGIN_ARGS, []).extend(values)


def plugin_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``-p no:NAME`` blocks a plugin, ``-p MODULE`` loads one, as pytest has it. Accepted before
    the command (``runpipe -p no:retime PIPELINE``) and after it; both places add up."""
    return click.option(
        "-p", "plugin_args", multiple=True, metavar="no:NAME|MODULE", expose_value=False, callback=_collect_plugin_arg,
        help="Block plugin NAME (-p no:retime, -p no:gemini), or load plugin MODULE by import name. Repeatable.",
    )(func)


def _engine():
    """The engine for this command, with the plugins ``-p`` blocked or loaded."""
    import importlib

    from runpipe.engine import Engine
    from runpipe.errors import PluginError
    from runpipe.plugin_manager import plugin_name

    blocked, modules = [], []
    for arg in click.get_current_context().find_root().meta.get(PLUGIN_ARGS, []):
        if arg.startswith("no:"):
            try:
                blocked.append(plugin_name(arg.removeprefix("no:")))
            except PluginError as exc:  # a typo is a bad command line, not a broken plugin
                raise click.UsageError(str(exc)) from None
            continue
        try:
            modules.append(importlib.import_module(arg))
        except ImportError as exc:
            raise PluginError(f"-p {arg}: cannot import plugin module {arg!r}: {exc}") from exc
    return Engine(modules, blocked=blocked)


@click.group(cls=DefaultRunGroup, help=MAIN_HELP, params=[VERBOSE_OPTION], context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="runpipe", message="runpipe %(version)s")
@plugin_option
def main() -> None:
    pass


# ---------------------------------------------------------------------------------------


@main.command("run")
@click.argument("pipeline")
@click.argument("inputs", nargs=-1)
@click.option("-o", "--output-dir", type=click.Path(file_okay=False, path_type=Path), help="Where exports go (default: the pipeline's export.output_dir).")
@click.option("-b", "--backend", help="Analysis backend: auto, gemini, local, or a plugin's.")
@click.option("-m", "--model", help="Gemini model instead of the pipeline's (see `runpipe models`).")
@click.option("-c", "--concurrency", type=click.IntRange(1, 256), help="Inputs processed at once.")
@click.option("--executor", help="Run per-input work on a registered executor (e.g. dask).")
@click.option("--executor-option", "executor_options", multiple=True, metavar="KEY=VALUE", help="Executor option, e.g. address=tcp://host:8786.")
@click.option("--force", is_flag=True, help="Ignore stored results: transcode and analyse again (a still-valid Gemini upload is reused).")
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON on stdout.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@plugin_option
@handle_errors
def run_command(pipeline: str, inputs: tuple[str, ...], output_dir: Path | None, backend: str | None, model: str | None,
                concurrency: int | None, executor: str | None, executor_options: tuple[str, ...], force: bool, as_json: bool, no_progress: bool) -> None:
    """Run PIPELINE (a YAML file or a built-in name) on INPUTS."""
    from runpipe.cli_output import ProgressPrinter, print_summary, summary_dict

    with _engine() as engine:
        spec = _with_model(engine.load(pipeline), model)
        printer = ProgressPrinter(enabled=not (no_progress or as_json) and sys.stderr.isatty())
        engine.subscribe(printer)
        try:
            result = engine.run(spec, list(inputs) or None, output_dir=output_dir, backend=backend,
                                force=force, concurrency=concurrency, executor=executor,
                                executor_options=_key_values(executor_options, "--executor-option"))
        finally:
            printer.close()
        if as_json:
            click.echo(json.dumps(summary_dict(result, printer.messages), indent=2, ensure_ascii=False))
        else:
            print_summary(result, printer.messages)
    if not result.ok:
        sys.exit(EXIT_FAILED_INPUTS)


@main.command("schema")
@click.argument("name")
@plugin_option
@handle_errors
def schema_command(name: str) -> None:
    """Print the options of the component NAME (a backend, post-processing step, export format
    or executor) or of the pipeline stage NAME (ingest, normalize, analyze, postprocess, export)
    as JSON Schema: types, defaults, ranges and what each one does."""
    from runpipe.paths import builtin_schemas_dir
    from runpipe.registry import options_schemas

    stages = json.loads((builtin_schemas_dir() / "pipeline.schema.json").read_text(encoding="utf-8"))["properties"]["stages"]["properties"]
    if name in stages:
        click.echo(json.dumps({"title": f"stage {name} (stages.{name} of a pipeline)", **stages[name]}, indent=2, ensure_ascii=False))
        return
    with _engine() as engine:
        schemas = options_schemas(engine.registries, name)
    click.echo(json.dumps(schemas[0] if len(schemas) == 1 else schemas, indent=2, ensure_ascii=False))


@main.command("validate")
@click.argument("pipelines", nargs=-1, required=True)
@plugin_option
@handle_errors
def validate_command(pipelines: tuple[str, ...]) -> None:
    """Check pipeline files against the schema and the loaded plugins."""
    failed = False
    with _engine() as engine:
        for location in pipelines:
            try:
                engine.load(location)
                click.echo(f"ok: {location}")
            except PipelineConfigError as exc:
                failed = True
                click.secho(f"invalid: {exc}", fg="red", err=True)
    if failed:
        sys.exit(EXIT_CONFIG)


@main.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--hook", help="Only plugins implementing this hook.")
@plugin_option
@handle_errors
def plugins_command(as_json: bool, hook: str | None) -> None:
    """List loaded plugins, their versions, hooks and what they registered."""
    with _engine() as engine:
        infos = [p for p in engine.plugins() if hook is None or hook in p.hooks]
        failures = engine.plugin_failures
    if as_json:
        data = {
            "plugins": [
                {"name": p.name, "dist": p.dist, "version": p.version, "builtin": p.builtin,
                 "hooks": list(p.hooks), "registered": p.registered}
                for p in infos
            ],
            "failed": [{"name": f.name, "error": f.error} for f in failures],
        }
        click.echo(json.dumps(data, indent=2))
        return
    for info in infos:
        origin = f"built-in {info.version}" if info.builtin else f"{info.dist or 'local'} {info.version or ''}".strip()
        click.secho(f"{info.name}  ({origin})", bold=True)
        click.echo(f"  hooks: {', '.join(info.hooks)}")
        for kind, names in info.registered.items():
            click.echo(f"  {kind}: {', '.join(names)}")
    for failure in failures:
        click.secho(f"{failure.name}  FAILED TO LOAD: {failure.error}", fg="red")


@main.command("estimate")
@click.argument("pipeline")
@click.argument("inputs", nargs=-1)
@click.option("-b", "--backend", help="Backend whose limits apply (default: the pipeline's).")
@click.option("-m", "--model", help="Gemini model instead of the pipeline's (for --count-tokens).")
@click.option("--count-tokens", is_flag=True, help="Ask the backend's countTokens endpoint (a real API call).")
@click.option("--json", "as_json", is_flag=True)
@plugin_option
@handle_errors
def estimate_command(pipeline: str, inputs: tuple[str, ...], backend: str | None, model: str | None, count_tokens: bool, as_json: bool) -> None:
    """Duration, and per task what its backend would be sent (Gemini: audio tokens, request size,
    inline or upload) - without a backend call."""
    from runpipe.estimate import estimate

    with _engine() as engine:
        spec = _with_model(engine.load(pipeline), model)
        rows = estimate(engine, spec, list(inputs), backend=backend, count_tokens=count_tokens)
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
    else:
        for row in rows:
            if row.get("error"):
                click.secho(f"{row['input']}: {row['error']}", fg="red", err=True)
                continue
            line = f"{row['input']}: {row['duration_s']:.1f} s"
            if row["audio_tokens"] is not None:
                line += f", {row['audio_tokens']} audio tokens"
            if row["request_bytes"] is not None:
                line += f", {row['request_bytes'] / 1e6:.2f} MB request"
            line += f" -> {row['delivery']}"
            if row.get("counted_tokens") is not None:
                line += f", countTokens says {row['counted_tokens']}"
            click.echo(line)
    if any(r.get("error") for r in rows):
        sys.exit(EXIT_FAILED_INPUTS)


@main.command("ask")
@click.argument("audio")
@click.argument("questions", nargs=-1, required=True)
@click.option("-m", "--model", help="Gemini model (default: the backend's).")
@click.option("--no-retime", is_flag=True, help="Keep the model's times for the moments answers cite (no offline recogniser).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def ask_command(audio: str, questions: tuple[str, ...], model: str | None, no_retime: bool, as_json: bool) -> None:
    """Ask Gemini QUESTIONS about AUDIO (a file or a URL): one upload and, for audio long enough
    for context caching, one cache that every question is asked against (the ``ask`` prompt, as
    a pipeline task with ``questions:``)."""
    from runpipe.interfaces import IngestOptions
    from runpipe.media import Target, normalize
    from runpipe.model import AudioFile, MediaItem, Task
    from runpipe.plugins.gemini.settings import find_api_key, missing_key_message
    from runpipe.tasks import ANSWERS_SCHEMA, load_schema

    if find_api_key(None) is None:
        raise BackendUnavailable(f"free-form answers need Gemini; the offline models cannot answer questions: {missing_key_message(None)}")
    with _engine() as engine:
        prompt = engine.registries.prompts.registration("ask").value
        _, schema = load_schema(prompt.schema, Path.cwd(), "prompt ask")
        task = Task(name="ask", prompt=prompt.text, schema_name=ANSWERS_SCHEMA, schema=schema, model=model, backend="gemini",
                    system_instruction=prompt.system_instruction, options={"questions": list(questions)})
        backend = engine.backend("gemini", {"retime_moments": False} if no_retime else {})
        backend.check_task(task)  # an unknown model or a thinking level it refuses: one line, before any upload
        if "://" in audio:
            media = AudioFile(source=MediaItem(audio, "url", audio.rsplit("/", 1)[-1] or audio), path=None, mime_type="video/*",
                              duration=None, content_hash=audio)
        else:
            source = next(s for s in engine.sources() if s.claims(audio))
            item = next(iter(source.resolve(audio, IngestOptions())), None)
            if item is None:
                raise PipelineConfigError(f"{audio}: no such audio file")
            media = normalize(item, Target())
        analysis = backend.analyze(media, task)
    answers, provenance = analysis.data["answers"], analysis.provenance
    if as_json:
        click.echo(json.dumps({"model": analysis.model, **provenance, "answers": answers, "notes": list(analysis.notes)},
                              indent=2, ensure_ascii=False))
        return
    for answer in answers:
        click.secho(answer["question"], bold=True)
        click.echo(answer["answer"])
        for moment in answer["moments"]:
            click.echo(f"  [{moment['timestamp']}] {moment['quote']}")
    for note in analysis.notes:
        click.echo(f"note: {note}", err=True)
    cached = (f"one cache ({provenance['cached_tokens']} tokens read from it)" if provenance["cache"]
              else "no cache (audio too short to cache)")
    click.echo(f"-- {len(answers)} question(s), one upload, {cached}", err=True)


@main.command("models")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def models_command(as_json: bool) -> None:
    """List the Gemini models your API key can use for audio analysis (one models.list request);
    the default is marked."""
    with _engine() as engine:
        backend = engine.backend("gemini")
        models, default = backend.models(), backend.settings.model
    if as_json:
        click.echo(json.dumps([m.as_dict(default) for m in models], indent=2))
        return
    for info in models:
        mark = "  (default)" if info.name == default else ""
        limit = f"  {info.input_token_limit:,} input tokens" if info.input_token_limit else ""
        click.echo(f"{info.name}{mark}{limit}")
    if default not in {m.name for m in models}:
        click.secho(f"the default model {default} is not among them: choose one with -m/--model", fg="yellow", err=True)


@main.command("export")
@click.argument("results", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-f", "--format", "formats", default="json,srt,vtt,md,txt", show_default=True, help="Comma-separated formats.")
@click.option("--rename", multiple=True, metavar="'Speaker 1=Ada'", help="Name a speaker (repeatable).")
@click.option("--option", "options", multiple=True, metavar="FORMAT.KEY=VALUE", help="Exporter option, e.g. srt.max_line_chars=32.")
@click.option("-o", "--output-dir", type=click.Path(file_okay=False, path_type=Path), help="Default: beside each result.")
@plugin_option
@handle_errors
def export_command(results: tuple[Path, ...], formats: str, rename: tuple[str, ...], options: tuple[str, ...], output_dir: Path | None) -> None:
    """Re-export RESULT.json files in other formats, with new speaker names or subtitle
    settings - without calling a backend or touching the audio."""
    from runpipe.reexport import reexport

    with _engine() as engine:
        for result in results:
            for artifact in reexport(engine, result, [f.strip() for f in formats.split(",") if f.strip()], rename, options, output_dir):
                click.echo(f"wrote {artifact.path}")


@main.command("status")
@click.argument("run_id", required=False)
@click.option("--json", "as_json", is_flag=True)
@click.option("-n", "--limit", default=10, show_default=True, type=click.IntRange(min=1), help="How many recent runs.")
@handle_errors
def status_command(run_id: str | None, as_json: bool, limit: int) -> None:
    """Show recent runs, or what happened to each input of RUN_ID."""
    from runpipe.paths import user_dir
    from runpipe.store import RunStore

    store = RunStore(user_dir() / "runs.sqlite")
    try:
        data: Any = store.run_inputs(run_id) if run_id else store.runs(limit)
    finally:
        store.close()
    if data is None:
        _fail(f"no run {run_id!r} in {store.path}; `runpipe status` lists the recent runs", EXIT_CONFIG)
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    if run_id:
        for row in data:
            line = f"{row['status']:11} {row['uri']}"
            if row["error"]:
                line += f"\n            {row['error']}"
            click.echo(line)
    else:
        for row in data:
            line = f"{row['id']}  {row['pipeline']:12} {row['status']:11} {row['done']} done, {row['failed']} failed"
            if row["unfinished"]:
                line += f", {row['unfinished']} not finished"
            click.echo(line)


@main.group("cache", cls=VerboseGroup)
def cache_group() -> None:
    """Inspect or clear stored stage results and normalized audio."""


@cache_group.command("info")
@handle_errors
def cache_info() -> None:
    from runpipe.paths import cache_dir, user_dir
    from runpipe.store import RunStore

    store = RunStore(user_dir() / "runs.sqlite")
    counts = store.counts()
    store.close()
    files = list(cache_dir("normalized").iterdir()) + list(cache_dir("windows").iterdir())
    click.echo(f"store: {user_dir() / 'runs.sqlite'}")
    for kind, count in sorted(counts.items()):
        click.echo(f"  {kind}: {count} stored results")
    click.echo(f"normalized audio: {len(files)} files, {sum(f.stat().st_size for f in files) / 1e6:.1f} MB")


@cache_group.command("clear")
@click.option("--kind", multiple=True, help="Only this kind of stored result (e.g. analysis).")
@handle_errors
def cache_clear(kind: tuple[str, ...]) -> None:
    import shutil

    from runpipe.paths import cache_dir, user_dir
    from runpipe.store import RunStore

    store = RunStore(user_dir() / "runs.sqlite")
    removed = store.clear(kind or None)
    store.close()
    if not kind:
        for folder in ("normalized", "windows"):
            shutil.rmtree(cache_dir(folder))
    click.echo(f"cleared {removed} stored results" + ("" if kind else " and the normalized audio"))


if __name__ == "__main__":  # pragma: no cover
    main()
