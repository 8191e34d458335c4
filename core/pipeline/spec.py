"""A pipeline as typed, frozen values. ``Pipeline.from_dict(d).to_dict()`` round-trips."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from runpipe.media import Target  # the normalize stage's settings are its target


def _named_entries(entries: list[Any] | None) -> tuple["NamedOptions", ...]:
    """YAML lists like ``[json, {srt: {max_line_chars: 32}}]`` -> NamedOptions values."""
    result = []
    for entry in entries or ():
        if isinstance(entry, str):
            result.append(NamedOptions(entry, {}))
        else:
            ((name, options),) = entry.items()
            result.append(NamedOptions(name, dict(options or {})))
    return tuple(result)


@dataclass(frozen=True, slots=True)
class NamedOptions:
    """A post-processing step or export format, with its options."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def to_yaml(self) -> str | dict[str, Any]:
        return {self.name: dict(self.options)} if self.options else self.name


@dataclass(frozen=True, slots=True)
class IngestSpec:
    inputs: tuple[str, ...] = ()
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    recursive: bool = True


@dataclass(frozen=True, slots=True)
class TaskSpec:
    prompt: str | None = None  # a registered prompt's name
    prompt_text: str | None = None  # or an inline prompt
    name: str | None = None
    question: str | None = None
    questions: tuple[str, ...] = ()  # answered one by one over one upload (prompt ``ask``)
    schema: str | None = None
    model: str | None = None
    backend: str | None = None
    system_instruction: str | None = None
    time_range: str | None = None
    generation: Mapping[str, Any] = field(default_factory=dict)

    @property
    def task_name(self) -> str:
        return self.name or self.prompt or "task"


@dataclass(frozen=True, slots=True)
class ChunkingSpec:
    max_seconds: float | None = None
    overlap_seconds: float | None = None
    parallel: int | None = None
    min_split_seconds: float | None = None  # None: runpipe.plugins.analyze.MIN_SPLIT_SECONDS


@dataclass(frozen=True, slots=True)
class AnalyzeSpec:
    tasks: tuple[TaskSpec, ...]
    backend: str = "auto"
    model: str | None = None
    backends: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    chunking: ChunkingSpec = ChunkingSpec()


@dataclass(frozen=True, slots=True)
class ExportSpec:
    formats: tuple[NamedOptions, ...] = (NamedOptions("json"),)
    output_dir: str = "out"
    template: str = "{stem}"


@dataclass(frozen=True, slots=True)
class SpeakersSpec:
    count: int | None = None
    min: int | None = None
    max: int | None = None
    names: Mapping[str, str] | tuple[str, ...] | None = None

    def name_for(self, label: str, order: int) -> str | None:
        """The name for ``label``, the ``order``-th speaker (0-based) by first appearance."""
        if isinstance(self.names, tuple):
            return self.names[order] if order < len(self.names) else None
        if self.names:
            return self.names.get(label)
        return None


@dataclass(frozen=True, slots=True)
class Pipeline:
    name: str
    analyze: AnalyzeSpec
    description: str = ""
    ingest: IngestSpec = IngestSpec()
    normalize: Target = Target()
    #: The steps the pipeline lists; None when it has no ``stages.postprocess``, which means every
    #: registered step that is on by default (``Engine.postprocess_steps``).
    postprocess: tuple[NamedOptions, ...] | None = None
    export: ExportSpec = ExportSpec()
    speakers: SpeakersSpec = SpeakersSpec()
    concurrency: int | None = None
    cache: bool = True
    vocabulary: tuple[str, ...] = ()  # terms the audio is likely to contain (recognition hints)
    source: Path | None = field(default=None, compare=False)  # the YAML file, when loaded from one

    @property
    def base_dir(self) -> Path:
        """Folder that relative paths in the pipeline are relative to."""
        return self.source.parent if self.source else Path.cwd()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: Path | None = None) -> "Pipeline":
        """Build from a dict that already passed ``schemas/pipeline.schema.json``."""
        stages = data["stages"]
        analyze = stages["analyze"]
        tasks = []
        for task in analyze["tasks"]:
            prompt = task.get("prompt", "ask")  # a task of questions alone asks them
            tasks.append(
                TaskSpec(
                    prompt=prompt if isinstance(prompt, str) else None,
                    prompt_text=prompt["text"] if isinstance(prompt, Mapping) else None,
                    name=task.get("name"),
                    question=task.get("question"),
                    questions=tuple(task.get("questions", ())),
                    schema=task.get("schema"),
                    model=task.get("model"),
                    backend=task.get("backend"),
                    system_instruction=task.get("system_instruction"),
                    time_range=task.get("time_range"),
                    generation=dict(task.get("generation", {})),
                )
            )
        ingest = stages.get("ingest", {})
        normalize = stages.get("normalize", {})
        export = stages.get("export", {})
        speakers = data.get("speakers", {})
        names = speakers.get("names")
        chunking = analyze.get("chunking", {})
        return cls(
            name=data["name"],
            description=data.get("description", ""),
            concurrency=data.get("concurrency"),
            cache=data.get("cache", True),
            vocabulary=tuple(data.get("vocabulary", ())),
            speakers=SpeakersSpec(
                count=speakers.get("count"),
                min=speakers.get("min"),
                max=speakers.get("max"),
                names=tuple(names) if isinstance(names, list) else (dict(names) if names else None),
            ),
            ingest=IngestSpec(
                inputs=tuple(ingest.get("inputs", ())),
                include=tuple(ingest.get("include", ())),
                exclude=tuple(ingest.get("exclude", ())),
                recursive=ingest.get("recursive", True),
            ),
            normalize=Target(**normalize),
            analyze=AnalyzeSpec(
                tasks=tuple(tasks),
                backend=analyze.get("backend", "auto"),
                model=analyze.get("model"),
                backends={k: dict(v) for k, v in analyze.get("backends", {}).items()},
                chunking=ChunkingSpec(**chunking),
            ),
            postprocess=_named_entries(stages["postprocess"].get("steps")) if "postprocess" in stages else None,
            export=ExportSpec(
                formats=_named_entries(export.get("formats", ["json"])),
                output_dir=export.get("output_dir", "out"),
                template=export.get("template", "{stem}"),
            ),
            source=source,
        )

    def to_dict(self) -> dict[str, Any]:
        """The pipeline as YAML-ready data (defaults written out)."""
        tasks = []
        for task in self.analyze.tasks:
            entry: dict[str, Any] = {"prompt": task.prompt if task.prompt else {"text": task.prompt_text}}
            for key in ("name", "question", "schema", "model", "backend", "system_instruction", "time_range"):
                if getattr(task, key) is not None:
                    entry[key] = getattr(task, key)
            if task.questions:
                entry["questions"] = list(task.questions)
            if task.generation:
                entry["generation"] = dict(task.generation)
            tasks.append(entry)
        analyze: dict[str, Any] = {"backend": self.analyze.backend, "tasks": tasks}
        if self.analyze.model:
            analyze["model"] = self.analyze.model
        if self.analyze.backends:
            analyze["backends"] = {k: dict(v) for k, v in self.analyze.backends.items()}
        chunking = {k: v for k, v in dataclasses.asdict(self.analyze.chunking).items() if v is not None}
        if chunking:
            analyze["chunking"] = chunking
        normalize = {"format": self.normalize.format, "sample_rate": self.normalize.sample_rate, "channels": self.normalize.channels}
        if self.normalize.bitrate:
            normalize["bitrate"] = self.normalize.bitrate
        data: dict[str, Any] = {"name": self.name}
        if self.description:
            data["description"] = self.description
        if self.concurrency is not None:
            data["concurrency"] = self.concurrency
        if not self.cache:
            data["cache"] = False
        if self.vocabulary:
            data["vocabulary"] = list(self.vocabulary)
        speakers = {k: v for k, v in (("count", self.speakers.count), ("min", self.speakers.min), ("max", self.speakers.max)) if v is not None}
        if self.speakers.names:
            speakers["names"] = list(self.speakers.names) if isinstance(self.speakers.names, tuple) else dict(self.speakers.names)
        if speakers:
            data["speakers"] = speakers
        data["stages"] = {
            "ingest": {
                "inputs": list(self.ingest.inputs),
                "include": list(self.ingest.include),
                "exclude": list(self.ingest.exclude),
                "recursive": self.ingest.recursive,
            },
            "normalize": normalize,
            "analyze": analyze,
            **({"postprocess": {"steps": [s.to_yaml() for s in self.postprocess]}} if self.postprocess is not None else {}),
            "export": {
                "formats": [f.to_yaml() for f in self.export.formats],
                "output_dir": self.export.output_dir,
                "template": self.export.template,
            },
        }
        return data
