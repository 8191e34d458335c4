"""The typed values that flow forward through the stages.

ingest -> :class:`MediaItem`
normalize -> :class:`AudioFile`
analyze -> :class:`Analysis` (one per task)
post-process -> :class:`Document` (what exporters render; its JSON form is the source of truth)
export -> :class:`Artifact`

Every value is a frozen dataclass: a stage returns a new value (``dataclasses.replace``)
and never mutates the one it was given. Free-form data a plugin wants to carry lives in
``extras``, keyed by the plugin's name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

MediaKind = Literal["file", "url"]
#: How a segment's time was obtained: ``aligned`` (its first word heard there), ``interpolated``
#: (other words of it heard), ``passage`` (placed on a speech passage by voice activity and text
#: length), ``model`` (the backend's own time) or ``approximate`` (the backend's, unverified).
Timing = Literal["aligned", "interpolated", "passage", "model", "approximate"]


@dataclass(frozen=True, slots=True)
class TimeRange:
    """A stretch of the input's timeline in seconds; ``end`` may be None for "to the end"."""

    start: float
    end: float | None = None

    def contains(self, t: float) -> bool:
        return t >= self.start and (self.end is None or t < self.end)

    def __str__(self) -> str:
        from runpipe.timecode import format_clock

        end = "" if self.end is None else format_clock(self.end)
        return f"{format_clock(self.start)}-{end}"


@dataclass(frozen=True, slots=True)
class MediaItem:
    """One input as found by the ingest stage. ``uri`` is an absolute path or a URL."""

    uri: str
    kind: MediaKind
    name: str  # human-readable name used in messages and output templates
    size_bytes: int | None = None
    mime_type: str | None = None

    @property
    def path(self) -> Path | None:
        return Path(self.uri) if self.kind == "file" else None

    @property
    def stem(self) -> str:
        return Path(self.name).stem if self.kind == "file" else self.name


@dataclass(frozen=True, slots=True)
class AudioInfo:
    """What probing a media file found."""

    duration: float | None
    codec: str | None
    sample_rate: int | None
    channels: int | None
    container: str | None = None
    has_video: bool = False


@dataclass(frozen=True, slots=True)
class AudioFile:
    """The normalized audio a backend analyses.

    ``path`` is None for remote references (URLs a backend accepts directly).
    ``content_hash`` is the sha256 of the *source* bytes; it keys every cache.
    """

    source: MediaItem
    path: Path | None
    mime_type: str
    duration: float | None
    content_hash: str
    original: AudioInfo | None = None
    sample_rate: int | None = None
    channels: int | None = None
    bytes_before: int | None = None
    bytes_after: int | None = None
    # Where ``path`` starts in the source file, in seconds (a window cut out is a slice of it),
    # for a backend that decodes the source itself rather than the lossy normalized copy.
    source_offset: float = 0.0

    def source_stretch(self, start: float, end: float | None) -> tuple[Path, float, float | None]:
        """The file to decode for ``start``-``end`` of this audio, and those times on its
        timeline: the source itself where it is a local file, else the normalized copy.

        The normalized copy is made for uploading (32 kbps Vorbis by default), and its
        artefacts change what a local recogniser hears: on the dev corpus' two-speaker dialogue
        Whisper heard "Tear a thin sheet" in the original and "Tereth in-sheet" in the copy. A
        user calling the recogniser directly decodes the original."""
        source = self.source.path
        if source is None or not source.is_file():
            return self.path, start, end
        if end is None and self.source_offset:  # a slice of the source ends where the slice does
            end = self.duration
        return source, self.source_offset + start, None if end is None else self.source_offset + end


@dataclass(frozen=True, slots=True)
class Task:
    """One analysis task of a pipeline, with its prompt and schema resolved."""

    name: str
    prompt: str
    schema_name: str
    schema: Mapping[str, Any]
    model: str | None = None
    backend: str = "auto"
    system_instruction: str | None = None
    time_range: TimeRange | None = None
    generation: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)  # backend-specific options
    #: Names and terms the audio is likely to contain (the pipeline's ``vocabulary`` and the
    #: speakers' names): hints for recognisers that take custom vocabulary.
    vocabulary: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Usage:
    """Token accounting of one analysis (None where a backend cannot know)."""

    prompt_tokens: int | None = None
    audio_tokens: int | None = None
    text_tokens: int | None = None
    output_tokens: int | None = None
    thinking_tokens: int | None = None
    requests: int = 0

    def __add__(self, other: "Usage") -> "Usage":
        def add(a: int | None, b: int | None) -> int | None:
            return None if a is None and b is None else (a or 0) + (b or 0)

        return Usage(
            *(add(getattr(self, f.name), getattr(other, f.name)) for f in dataclasses.fields(self) if f.name != "requests"),
            requests=self.requests + other.requests,
        )


@dataclass(frozen=True, slots=True)
class ModelUse:
    """One model's share of an answer that several models gave: ``role`` ``"timeline"`` (segment
    times, words, speakers, languages) or ``"understanding"`` (everything else), and its usage."""

    role: str
    model: str
    usage: Usage = field(default_factory=Usage)


@dataclass(frozen=True, slots=True)
class Analysis:
    """A backend's validated structured answer to one task.

    ``data`` conforms to the task's JSON schema. Segment timestamps in it are on the
    timeline of the audio the backend was given; ``offset`` says where that audio starts
    on the input's timeline (non-zero for chunks and time ranges).
    """

    task: str
    data: Mapping[str, Any]
    backend: str
    model: str
    usage: Usage = field(default_factory=Usage)
    offset: float = 0.0
    provenance: Mapping[str, Any] = field(default_factory=dict)
    estimated_fields: tuple[str, ...] = ()
    models: tuple[ModelUse, ...] = ()  # when more than one model answered; ``usage`` is their sum
    #: What the reader should know about this answer, in plain words (a field the backend could
    #: not fill, say); every export shows them with the result's notes.
    notes: tuple[str, ...] = ()
    #: The windows this answer was stitched from, on the input's timeline (empty: one piece).
    windows: tuple[TimeRange, ...] = ()


@dataclass(frozen=True, slots=True)
class Word:
    text: str
    start: float | None = None
    end: float | None = None
    probability: float | None = None


@dataclass(frozen=True, slots=True)
class Segment:
    """One stretch of speech (or sound) on the input's timeline, in seconds."""

    start: float
    end: float | None
    content: str
    speaker: str | None = None
    language: str | None = None
    language_code: str | None = None
    translation: str | None = None
    emotion: str | None = None
    words: tuple[Word, ...] = ()
    timing: Timing = "model"
    anchored_share: float | None = None
    original_timestamp: str | None = None
    extras: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Feelings:
    """How something sounds, as an answer described it: the mood of music (a word of the
    description schema's vocabulary, or ``other`` with ``mood_detail``), its energy, the emotion
    of speech, the language of lyrics. Empty fields are None."""

    mood: str | None = None
    mood_detail: str | None = None
    energy: str | None = None
    emotion: str | None = None
    lyrics_language: str | None = None

    def __bool__(self) -> bool:
        return any(getattr(self, f.name) for f in dataclasses.fields(self))


@dataclass(frozen=True, slots=True)
class AnswerItem:
    """One entry of a list an answer gave besides its segments: a meeting's decision or action
    item, a description's sound event, the answer to one of a task's questions (and each moment
    it rests on), or an entry of a schema of your own.

    Times are seconds on the input's timeline (None when the entry has none, or none that
    reads). ``extras`` holds the entry's keys no field covers; ``answered`` is the entry as the
    backend gave it (moved onto the input's timeline): the JSON result keeps exactly that.
    """

    text: str  # what it says: the decision, task, description, text, content, answer or quote
    start: float | None = None
    end: float | None = None
    timestamp: str | None = None  # the start as the answer wrote it (MM:SS)
    end_timestamp: str | None = None
    kind: str | None = None  # a sound event's kind: speech, music, singing, sound, silence
    speaker: str | None = None  # label of who said it
    owner: str | None = None  # label of who is to do it
    due: str | None = None
    question: str | None = None  # the question a free-form answer answers (its text is the answer)
    moments: tuple["AnswerItem", ...] = ()  # the moments an answer rests on (their text: the quote)
    timing: Timing | None = None  # how ``start`` was obtained, when the answer says (as for segments)
    feelings: Feelings = field(default_factory=Feelings)
    extras: Mapping[str, Any] = field(default_factory=dict)
    answered: Any = None


@dataclass(frozen=True, slots=True)
class AnswerField:
    """One field of an answer besides its segments, in the order the answer gave them.

    ``text`` is set for a text (a summary, a description), ``items`` for a list (decisions,
    events); ``answered`` is the value as the backend gave it, what the JSON result keeps (and
    the only form of a value that is neither, such as a number).
    """

    name: str
    answered: Any
    text: str | None = None
    items: tuple[AnswerItem, ...] | None = None


@dataclass(frozen=True, slots=True)
class Speaker:
    label: str  # "Speaker 1"
    name: str | None = None  # "Ada", set by the pipeline or `runpipe export --rename`

    @property
    def display(self) -> str:
        return self.name or self.label


@dataclass(frozen=True, slots=True)
class Document:
    """The post-processed result of one task on one input: what every exporter renders.

    ``segments`` is the typed transcript when the task has one; ``answer`` the task's other
    answer fields (summary, decisions, events, answer, ...), typed. Both are parsed once from
    the backend's validated JSON (:mod:`runpipe.answer`).
    """

    source: MediaItem
    audio: AudioFile
    task: str
    schema_name: str
    backend: str
    model: str
    answer: tuple[AnswerField, ...] = ()
    segments: tuple[Segment, ...] = ()
    speakers: tuple[Speaker, ...] = ()
    usage: Usage = field(default_factory=Usage)
    provenance: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    #: The windows the analysis was made of (empty: the audio was analysed in one piece); a
    #: backend labels speakers afresh in each, which the ``speakers`` step reconciles.
    windows: tuple[TimeRange, ...] = ()
    #: The task's time range, when it had one: only segments starting inside it are kept.
    time_range: TimeRange | None = None
    models: tuple[ModelUse, ...] = ()  # see Analysis.models

    def field(self, name: str) -> AnswerField | None:
        """The answer field called ``name``, or None when the answer has none."""
        return next((f for f in self.answer if f.name == name), None)

    def text(self, name: str) -> str | None:
        """The text of answer field ``name`` (None when it is missing or not a text)."""
        found = self.field(name)
        return found.text if found is not None else None

    def items(self, name: str) -> tuple[AnswerItem, ...]:
        """The entries of list field ``name`` (empty when it is missing or not a list)."""
        found = self.field(name)
        return found.items or () if found is not None else ()

    @property
    def summary(self) -> str | None:
        return self.text("summary")

    @property
    def mood(self) -> Feelings:
        """The overall mood a description gave (its ``mood`` and ``mood_detail`` fields)."""
        return Feelings(mood=self.text("mood") or None, mood_detail=self.text("mood_detail") or None)

    def speaker_name(self, label: str | None) -> str | None:
        if label is None:
            return None
        for speaker in self.speakers:
            if speaker.label == label:
                return speaker.display
        return label


@dataclass(frozen=True, slots=True)
class Artifact:
    """A file an exporter's output was written to."""

    format: str
    path: Path
    bytes: int


@dataclass(frozen=True, slots=True)
class InputResult:
    """Everything that happened to one input in one run."""

    item: MediaItem
    status: Literal["done", "failed", "skipped"]
    documents: tuple[Document, ...] = ()
    artifacts: tuple[Artifact, ...] = ()
    error: str | None = None
    failed_stage: str | None = None
    failed_plugin: str | None = None
    timings: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RunResult:
    pipeline: str
    inputs: tuple[InputResult, ...]
    run_id: str | None = None

    @property
    def ok(self) -> bool:
        return all(r.status != "failed" for r in self.inputs)

    @property
    def failed(self) -> tuple[InputResult, ...]:
        return tuple(r for r in self.inputs if r.status == "failed")
