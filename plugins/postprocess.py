"""Built-in post-process stage: an analysis becomes a :class:`Document` with typed segments and
answer fields on the input's timeline (parsed by :mod:`runpipe.answer`), consistent speaker
labels and the pipeline's speaker names; then the pipeline's post-processing steps run in order."""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Mapping

import jsonschema

from runpipe.answer import parse_answer
from runpipe.errors import BackendError
from runpipe.hookspecs import hookimpl
from runpipe.model import Analysis, AudioFile, Document, Segment, Speaker, Task
from runpipe.pipeline.spec import SpeakersSpec
from runpipe.run import RunContext

_GENERIC_SPEAKER = re.compile(r"^\s*(?:speaker|spk|sprecher|locutor|intervenant)[\s_:#-]*([0-9]+|[a-z])\s*$", re.IGNORECASE)


def validate_answer(data: Mapping[str, Any], task: Task) -> None:
    errors = sorted(jsonschema.Draft202012Validator(task.schema).iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        first = errors[0]
        where = "/".join(map(str, first.absolute_path)) or "(top level)"
        raise BackendError(f"answer does not match schema {task.schema_name} at {where}: {first.message} ({len(errors)} problem(s))")


def label_speakers(segments: tuple[Segment, ...], spec: SpeakersSpec) -> tuple[tuple[Segment, ...], tuple[Speaker, ...]]:
    """Generic labels (speaker_2, SPEAKER 01, Speaker A, spk:0) become Speaker 1, 2, ... in order
    of first appearance; names the model gave are kept; the pipeline's names are attached."""
    mapping: dict[str, str] = {}
    order: list[str] = []
    generic_count = 0
    for segment in segments:
        label = segment.speaker
        if label is None or label in mapping:
            continue
        if _GENERIC_SPEAKER.match(label):
            generic_count += 1
            mapping[label] = f"Speaker {generic_count}"
        else:
            mapping[label] = label.strip()
        if mapping[label] not in order:
            order.append(mapping[label])
    relabelled = tuple(
        dataclasses.replace(s, speaker=mapping.get(s.speaker, s.speaker)) if s.speaker else s for s in segments
    )
    speakers = tuple(Speaker(label, spec.name_for(label, index)) for index, label in enumerate(order))
    return relabelled, speakers


def to_document(analysis: Analysis, audio: AudioFile, task: Task, speakers_spec: SpeakersSpec) -> Document:
    validate_answer(analysis.data, task)
    parsed = parse_answer(analysis, audio.duration)
    segments, speakers = label_speakers(parsed.segments, speakers_spec)
    notes = list(parsed.notes)
    if analysis.estimated_fields:
        notes.append("estimated, not measured: " + ", ".join(analysis.estimated_fields))
    notes += analysis.notes
    return Document(
        source=audio.source,
        audio=audio,
        task=task.name,
        schema_name=task.schema_name,
        backend=analysis.backend,
        model=analysis.model,
        answer=parsed.fields,
        segments=segments,
        speakers=speakers,
        usage=analysis.usage,
        provenance={**analysis.provenance, "estimated_fields": list(analysis.estimated_fields)},
        windows=analysis.windows,
        time_range=task.time_range,
        notes=tuple(notes),
        models=analysis.models,
    )


@hookimpl(trylast=True)
def runpipe_postprocess(analysis: Analysis, audio: AudioFile, task: Task, run: RunContext) -> Document:
    document = to_document(analysis, audio, task, run.pipeline.speakers)
    for step in run.postprocess_steps:
        document = run.postprocessor(step).process(document)
    if task.time_range is not None:
        # after the steps: what counts is where a segment really starts once re-timed
        kept = tuple(s for s in document.segments if task.time_range.contains(s.start))
        document = dataclasses.replace(document, segments=kept)
    return document
