"""Resolving a pipeline's task specs into :class:`Task` values: prompt text, schema, model,
backend, time range and speaker hints, with errors that name the place in the pipeline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import jsonschema

from runpipe.errors import PipelineConfigError
from runpipe.interfaces import Prompt
from runpipe.model import Task
from runpipe.paths import builtin_schemas_dir
from runpipe.pipeline.spec import Pipeline, SpeakersSpec, TaskSpec
from runpipe.registry import Registry
from runpipe.timecode import parse_range


#: The schema of a task's ``questions``: one answer per question, with the moments it rests on.
ANSWERS_SCHEMA = "answers"


def load_schema(reference: str | Mapping[str, Any], base_dir: Path, where: str) -> tuple[str, Mapping[str, Any]]:
    """A schema by name (``transcript`` -> schemas/transcript.schema.json) or by file path.

    Returns (schema name, schema). The schema itself must be a valid JSON Schema.
    """
    if isinstance(reference, Mapping):
        schema = reference
        name = str(reference.get("title") or "inline")
    else:
        is_path = reference.endswith(".json") or "/" in reference or "\\" in reference
        path = (base_dir / reference) if is_path else builtin_schemas_dir() / f"{reference}.schema.json"
        name = Path(reference).name.removesuffix(".json").removesuffix(".schema") if is_path else reference
        if not path.is_file():
            known = ", ".join(sorted(p.name.removesuffix(".schema.json") for p in builtin_schemas_dir().glob("*.schema.json") if p.name != "pipeline.schema.json"))
            raise PipelineConfigError(f"{where}: schema file {path} does not exist (built-in schemas: {known})")
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise PipelineConfigError(f"{where}: cannot read schema {path}: {exc}") from exc
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise PipelineConfigError(f"{where}: not a valid JSON Schema: {exc.message}") from exc
    return name, schema


def speaker_hint(speakers: SpeakersSpec) -> str:
    """Prompt text telling a model what the pipeline knows about the speakers."""
    parts = []
    if speakers.count:
        parts.append(f"There are exactly {speakers.count} speakers.")
    elif speakers.min or speakers.max:
        parts.append(f"There are between {speakers.min or 1} and {speakers.max or 'several'} speakers.")
    if isinstance(speakers.names, tuple):
        ordered = ", ".join(f"Speaker {i + 1} is {name}" for i, name in enumerate(speakers.names))
        parts.append(f"Label speakers Speaker 1, Speaker 2, ... in order of first appearance; {ordered}. Use these names in the summary.")
    elif speakers.names:
        mapping = ", ".join(f"{label} is {name}" for label, name in speakers.names.items())
        parts.append(f"Label speakers Speaker 1, Speaker 2, ... in order of first appearance; {mapping}. Use these names in the summary.")
    return " ".join(parts)


def vocabulary(pipeline: Pipeline) -> tuple[str, ...]:
    """The pipeline's vocabulary and the speakers' names, each once."""
    names = pipeline.speakers.names
    named = tuple(names) if isinstance(names, tuple) else tuple((names or {}).values())
    return tuple(dict.fromkeys((*pipeline.vocabulary, *named)))


def speaker_options(speakers: SpeakersSpec) -> dict[str, Any]:
    options = {"num_speakers": speakers.count, "min_speakers": speakers.min, "max_speakers": speakers.max}
    return {k: v for k, v in options.items() if v is not None}


def resolve_task(spec: TaskSpec, index: int, pipeline: Pipeline, prompts: Registry[Prompt], backend: str | None) -> Task:
    where = f"{pipeline.source or '<pipeline>'}: stages.analyze.tasks[{index}]"
    if spec.prompt is not None:
        prompt = prompts.registration(spec.prompt).value if spec.prompt in prompts else None
        if prompt is None:
            raise PipelineConfigError(f"{where}.prompt: unknown prompt {spec.prompt!r}; registered prompts: {', '.join(sorted(prompts.names()))}")
        text, schema_ref, system = prompt.text, spec.schema or prompt.schema, spec.system_instruction or prompt.system_instruction
    else:
        if not spec.schema:
            raise PipelineConfigError(f"{where}.schema: an inline prompt needs a schema (a name from schemas/ or a path)")
        text, schema_ref, system = spec.prompt_text or "", spec.schema, spec.system_instruction
    schema_name, schema = load_schema(schema_ref, pipeline.base_dir, f"{where}.schema")
    if spec.questions and schema_name != ANSWERS_SCHEMA:
        raise PipelineConfigError(f"{where}.questions: questions are answered in schema {ANSWERS_SCHEMA!r} (prompt ask), not {schema_name!r}")
    if spec.question:
        text = f"{text.rstrip()}\n\nQuestion to answer in the `answer` field: {spec.question}"
    hint = speaker_hint(pipeline.speakers)
    if hint and "segments" in schema.get("properties", {}):
        text = f"{text.rstrip()}\n\n{hint}"
    try:
        time_range = parse_range(spec.time_range) if spec.time_range else None
    except ValueError as exc:
        raise PipelineConfigError(f"{where}.time_range: {exc}") from exc
    return Task(
        name=spec.task_name,
        prompt=text,
        schema_name=schema_name,
        schema=schema,
        model=spec.model or pipeline.analyze.model,
        backend=backend or spec.backend or pipeline.analyze.backend,
        system_instruction=system,
        time_range=time_range,
        generation=dict(spec.generation),
        options={
            **speaker_options(pipeline.speakers),
            **({"question": spec.question} if spec.question else {}),
            **({"questions": list(spec.questions)} if spec.questions else {}),
        },
        vocabulary=vocabulary(pipeline),
    )


def resolve_tasks(pipeline: Pipeline, prompts: Registry[Prompt], backend: str | None = None) -> tuple[Task, ...]:
    tasks = tuple(resolve_task(spec, i, pipeline, prompts, backend) for i, spec in enumerate(pipeline.analyze.tasks))
    names = [t.name for t in tasks]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise PipelineConfigError(f"{pipeline.source or '<pipeline>'}: stages.analyze.tasks: task names must be unique; give `name:` to the tasks using {', '.join(duplicates)}")
    return tasks
