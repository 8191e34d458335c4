"""Built-in post-process stage: an analysis becomes a :class:`Document` with typed segments on
the input's timeline (seconds, ordered, clamped to the duration), consistent speaker labels and
the pipeline's speaker names; then the pipeline's post-processing steps run in order."""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Mapping

import jsonschema

from runpipe.errors import BackendError
from runpipe.hookspecs import hookimpl
from runpipe.model import Analysis, AudioFile, Document, Segment, Speaker, Task, Word
from runpipe.pipeline.spec import SpeakersSpec
from runpipe.run import RunContext
from runpipe.timecode import item_seconds

_GENERIC_SPEAKER = re.compile(r"^\s*(?:speaker|spk|sprecher|locutor|intervenant)[\s_:#-]*([0-9]+|[a-z])\s*$", re.IGNORECASE)


def validate_answer(data: Mapping[str, Any], task: Task) -> None:
    errors = sorted(jsonschema.Draft202012Validator(task.schema).iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        first = errors[0]
        where = "/".join(map(str, first.absolute_path)) or "(top level)"
        raise BackendError(f"answer does not match schema {task.schema_name} at {where}: {first.message} ({len(errors)} problem(s))")


def _words(item: Mapping[str, Any], offset: float) -> tuple[Word, ...]:
    words = []
    for word in item.get("words") or ():
        start, end = word.get("start"), word.get("end")
        words.append(
            Word(
                text=str(word.get("text", word.get("word", ""))),
                start=None if start is None else start + offset,
                end=None if end is None else end + offset,
                probability=word.get("probability"),
            )
        )
    return tuple(words)


def build_segments(analysis: Analysis, duration: float | None) -> tuple[tuple[Segment, ...], list[str]]:
    """Typed segments on the input's timeline, and notes about what had to be repaired."""
    notes: list[str] = []
    raw = analysis.data.get("segments") or []
    pending: list[tuple[float, float | None, Mapping[str, Any], bool]] = []
    unparsed = 0
    previous = 0.0
    for item in raw:
        start = item_seconds(item, "start", "timestamp")
        if start is None:
            unparsed += 1
            start = previous
        else:
            start += analysis.offset
        end = item_seconds(item, "end", "end_timestamp")
        pending.append((start, None if end is None else end + analysis.offset, item, "start" in item))
        previous = start
    if unparsed:
        notes.append(f"{unparsed} segment timestamp(s) could not be read and were placed after the previous segment")
    # Kept in the backend's order: a model writes segments in the order they were spoken, while
    # its timestamps drift and jitter (sorting by them would shuffle the text); re-timing puts
    # them in time order, and sorts them when it keeps the backend's times.
    past_end = 0
    segments = []
    for index, (start, end, item, measured) in enumerate(pending):
        following = pending[index + 1][0] if index + 1 < len(pending) else duration
        if end is None or end <= start:
            end = following if following is not None and following > start else (start + 1.0 if duration is None else duration)
        timing = "aligned" if measured and item.get("words") else "model"
        if duration is not None and start > duration:
            past_end += 1
            start, timing = duration, "approximate"
        if duration is not None:
            end = min(end, duration)
        segments.append(
            Segment(
                start=round(start, 3),
                end=None if end is None else round(max(end, start), 3),
                content=str(item.get("content", item.get("text", ""))).strip(),
                speaker=item.get("speaker") or None,
                language=item.get("language") or None,
                language_code=item.get("language_code") or None,
                translation=item.get("translation") or None,
                emotion=(item.get("emotion") or None),
                words=_words(item, analysis.offset),
                timing=timing,
                original_timestamp=item.get("timestamp") if isinstance(item.get("timestamp"), str) else None,
            )
        )
    if past_end:
        notes.append(f"{past_end} segment(s) were timestamped past the end of the audio and were clamped to it")
    return tuple(segments), notes


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
    segments, notes = build_segments(analysis, audio.duration)
    segments, speakers = label_speakers(segments, speakers_spec)
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
        fields={k: v for k, v in analysis.data.items() if k != "segments"},
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
