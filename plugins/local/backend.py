"""``LocalBackend``: answers transcript, translation, meeting and description tasks offline,
with the models the ``local`` extra installs. Nothing is downloaded, ever."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar, Mapping

from runpipe.errors import BackendError, PipelineConfigError
from runpipe.interfaces import Backend, BackendLimits, check_options
from runpipe.model import Analysis, AudioFile, Task, TimeRange
from runpipe.plugins.local import models
from runpipe.plugins.local.audio import stream_windows
from runpipe.plugins.local.diarize import DiarizationSettings
from runpipe.plugins.local.enrich import (
    EMOTION_NOT_ESTIMATED,
    MEETING_METHOD,
    SUMMARY_METHOD,
    SpokenSentence,
    extractive_summary,
    find_action_items,
    find_decisions,
    split_sentences,
)
from runpipe.plugins.local.events import describe, detect_events
from runpipe.plugins.local.languages import language_name
from runpipe.plugins.local.recognize import Piece, Recognition, RecognitionSettings, recognize
from runpipe.plugins.local.transcribe import DecodingSettings, detect_region_languages
from runpipe.timecode import format_clock

TRANSLATION_METHOD = "Whisper translate task (base model): rough, lower quality than a text translator"
#: Said instead of a music mood: no offline model whose weights ship on PyPI was shown to beat a
#: majority-class guess on labelled clips, so none is guessed.
MOOD_NOT_ESTIMATED = "mood and energy were not estimated: the offline backend has no model for them (the Gemini backend gives them)"
QUESTION_NEEDS_GEMINI = (
    "The offline backend cannot answer free-form questions about audio; answering questions "
    "needs the Gemini backend (set GEMINI_API_KEY and use backend: gemini)."
)

OPTION_DOCS = {
    "whisper_model_dir": "a local faster-whisper model folder to use instead of the packaged Whisper base",
    "compute_type": "CTranslate2 compute type (int8, int8_float32, float32); default int8",
    "cpu_threads": "threads for Whisper and the embedder; default 2",
    "beam_size": "Whisper beam size; default 5",
    "language": "force one language code (e.g. en) instead of detecting it per speech region",
    "num_speakers": "exact number of speakers",
    "min_speakers": "fewest speakers to find when counting automatically; default 1",
    "max_speakers": "most speakers to find when counting automatically; default 8",
    "diarize": "label speakers (default true); false labels everything Speaker 1",
    "vad": "recognise only detected speech (default true); false decodes everything",
    "translate": "translate non-English segments with Whisper (default true)",
    "window_seconds": "decode window for long files, in seconds; default 600",
    "no_speech_threshold": "drop a window whose no-speech probability exceeds this (with low log-prob); default 0.6",
    "log_prob_threshold": "average log-probability below which output is retried or dropped; default -1.0",
}


def _number(options: Mapping[str, Any], key: str, kind, default, minimum=None):
    value = options.get(key, default)
    if value is None:
        return None
    try:
        value = kind(value)
    except (TypeError, ValueError):
        raise PipelineConfigError(f"backend local: option {key} must be a {kind.__name__}, got {value!r}") from None
    if minimum is not None and value < minimum:
        raise PipelineConfigError(f"backend local: option {key} must be at least {minimum}, got {value!r}")
    return value


def _flag(options: Mapping[str, Any], key: str, default: bool) -> bool:
    value = options.get(key, default)
    if not isinstance(value, bool):
        raise PipelineConfigError(f"backend local: option {key} must be true or false, got {value!r}")
    return value


def settings_from_options(options: Mapping[str, Any]) -> RecognitionSettings:
    """Validated :class:`RecognitionSettings` from pipeline options (see ``OPTION_DOCS``)."""
    language = options.get("language")
    if language is not None and (not isinstance(language, str) or not language.strip()):
        raise PipelineConfigError(f"backend local: option language must be a language code such as 'en', got {language!r}")
    num = _number(options, "num_speakers", int, None, 1)
    low = _number(options, "min_speakers", int, 1, 1)
    high = _number(options, "max_speakers", int, 8, 1)
    if low > high:
        raise PipelineConfigError(f"backend local: min_speakers ({low}) is more than max_speakers ({high})")
    decoding = DecodingSettings(
        beam_size=_number(options, "beam_size", int, 5, 1),
        language=language.strip().lower() if language else None,
        no_speech_threshold=_number(options, "no_speech_threshold", float, 0.6),
        log_prob_threshold=_number(options, "log_prob_threshold", float, -1.0),
    )
    return RecognitionSettings(
        whisper_model_dir=options.get("whisper_model_dir") or None,
        compute_type=str(options.get("compute_type", "int8")),
        cpu_threads=_number(options, "cpu_threads", int, 2, 1),
        decoding=decoding,
        diarization=DiarizationSettings(num_speakers=num, min_speakers=low, max_speakers=high),
        use_vad=_flag(options, "vad", True),
        diarize=_flag(options, "diarize", True),
        translate=_flag(options, "translate", True),
        window_seconds=_number(options, "window_seconds", float, 600.0, 60.0),
    )


class LocalBackend(Backend):
    """Offline transcription, speakers, languages, rough translation,
    extractive summary and sound events, from models installed with ``runpipe[local]``."""

    name: ClassVar[str] = "local"
    auto_rank: ClassVar[int] = 10  # `backend: auto` falls back to the offline models
    # Long files are streamed in windows inside the backend; the engine need not chunk them.
    limits: ClassVar[BackendLimits] = BackendLimits()
    option_names: ClassVar[tuple[str, ...]] = tuple(OPTION_DOCS)

    def __init__(self, options: Mapping[str, Any] | None = None):
        super().__init__(options)
        self.settings = settings_from_options(self.options)

    @classmethod
    def unavailable_reason(cls) -> str | None:
        missing = models.missing_packages()
        if missing:
            return f"the local backend needs {', '.join(missing)}; install with: {models.INSTALL_HINT}"
        return None

    @classmethod
    def schemas(cls) -> frozenset[str]:
        return frozenset(_FILLERS)

    def warm_up(self) -> None:
        models.require_packages()
        models.whisper_model(self.settings.whisper_model_dir, self.settings.compute_type, self.settings.cpu_threads)
        if self.settings.diarize:
            models.speaker_embedder(self.settings.cpu_threads)

    def analyze(self, audio: AudioFile, task: Task, *, window: TimeRange | None = None) -> Analysis:
        models.require_packages()
        if audio.path is None:
            raise BackendError(f"the local backend needs a local audio file; {audio.source.uri} was not downloaded")
        settings = self.settings
        # The engine's question is for the filler, not a recognition setting.
        recognition_options = {k: v for k, v in task.options.items() if k != "question"}
        if recognition_options:
            merged = {**self.options, **check_options(f"backend {self.name}", recognition_options, self.option_names)}
            settings = settings_from_options(merged)
        start = window.start if window else 0.0
        end = window.end if window else None
        fill = _FILLERS.get(task.schema_name)
        if fill is None:
            raise BackendError(
                f"the local backend cannot fill schema {task.schema_name!r} (task {task.name}); it answers "
                f"{', '.join(sorted(_FILLERS))}. Use the Gemini backend for this task."
            )
        data, estimated, provenance = fill(audio, task, settings, start, end)
        whisper = models.whisper_model(settings.whisper_model_dir, settings.compute_type, settings.cpu_threads)
        base = _base_provenance(settings, whisper)
        base["models"].update(provenance.pop("models", {}))
        notes = tuple(provenance.pop("notes", ()))
        return Analysis(
            task=task.name,
            data=data,
            backend=self.name,
            model=whisper.files.name,
            offset=start,
            provenance={**base, **provenance},
            estimated_fields=estimated,
            notes=notes,
        )


def _base_provenance(settings: RecognitionSettings, whisper) -> dict:
    return {
        "backend": "local",
        "models": {
            "whisper": {
                "name": whisper.files.name,
                "path": str(whisper.files.path),
                "sha256": whisper.files.sha256,
                "compute_type": settings.compute_type,
            },
            "vad": models.SILERO_VAD_NAME,
        },
        "settings": {
            "beam_size": settings.decoding.beam_size,
            "language": settings.decoding.language or "detected per speech region",
            "vad": settings.use_vad,
            "condition_on_previous_text": False,
            "no_speech_threshold": settings.decoding.no_speech_threshold,
            "log_prob_threshold": settings.decoding.log_prob_threshold,
        },
    }


def _speech_provenance(settings: RecognitionSettings, recognition: Recognition) -> dict:
    provenance: dict = {
        "methods": {"summary": SUMMARY_METHOD, "translation": TRANSLATION_METHOD},
        "languages": list(recognition.region_languages),
        "speakers": recognition.speaker_count,
        "decode_windows": recognition.windows,
    }
    if settings.diarize:
        embedder = models.speaker_embedder(settings.cpu_threads)
        provenance["models"] = {"speaker_embedder": {"name": models.EMBEDDER_NAME, "sha256": embedder.sha256}}
    return provenance


def _segment_record(piece: Piece, english_copy: bool) -> dict:
    seg = piece.segment
    record = {
        "speaker": piece.speaker,
        "timestamp": format_clock(seg.start),
        "content": seg.text,
        "language": language_name(seg.language),
        "language_code": seg.language,
        "translation": seg.text if english_copy and seg.language == "en" else piece.translation,
        "start": round(seg.start, 3),
        "end": round(seg.end, 3),
        "words": [{"text": w.text, "start": round(w.start, 3), "end": round(w.end, 3), "probability": round(w.probability, 3)} for w in seg.words],
    }
    return record


def _english_text(piece: Piece) -> str:
    return piece.segment.text if piece.segment.language == "en" else piece.translation


def _summary(pieces: tuple[Piece, ...]) -> str:
    # Join first: a sentence may run across pieces split at a speaker change or a window.
    return extractive_summary(split_sentences(" ".join(_english_text(p) for p in pieces)))


def _fill_transcript(audio, task, settings, start, end, *, english_copy: bool = False, emotion_field: bool = True):
    """``emotion_field``: the schema has a per-segment emotion, which is left out and noted."""
    recognition = recognize(audio.path, start, end, settings)
    segments = [_segment_record(p, english_copy) for p in recognition.pieces]
    estimated = ["summary"]
    if settings.translate:
        estimated.append("translation")
    data = {"summary": _summary(recognition.pieces), "segments": segments}
    provenance = _speech_provenance(settings, recognition)
    if emotion_field:
        provenance["methods"]["emotion"] = EMOTION_NOT_ESTIMATED
        provenance["notes"] = [EMOTION_NOT_ESTIMATED]
    return data, tuple(estimated), provenance


def _fill_translation(audio, task, settings, start, end):
    # The translation schema asks for English in every segment: English speech is its own.
    return _fill_transcript(audio, task, replace(settings, translate=True), start, end, english_copy=True, emotion_field=False)


def _fill_meeting(audio, task, settings, start, end):
    data, estimated, provenance = _fill_transcript(audio, task, settings, start, end, emotion_field=False)
    spoken = [
        SpokenSentence(sentence, seg["speaker"], seg["timestamp"])
        for seg in data["segments"]
        for sentence in split_sentences(seg["content"] if seg["language_code"] == "en" else seg["translation"])
    ]
    data = {
        "summary": data["summary"],
        "decisions": find_decisions(spoken),
        "action_items": find_action_items(spoken),
        "segments": data["segments"],
    }
    provenance["methods"]["decisions"] = provenance["methods"]["action_items"] = MEETING_METHOD
    return data, (*estimated, "decisions", "action_items"), provenance


def _fill_description(audio, task, settings, start, end):
    detector = models.event_detector()
    whisper = models.whisper_model(settings.whisper_model_dir, settings.compute_type, settings.cpu_threads)
    events, languages, duration = [], [], 0.0
    for window in stream_windows(audio.path, start=start, end=end, window_seconds=settings.window_seconds, vad=settings.vad):
        shift = window.offset - start
        duration = shift + window.duration
        events += [replace(e, start=e.start + shift, end=e.end + shift) for e in detect_events(window.samples, detector)]
        languages += [lang.code for lang in detect_region_languages(window.samples, window.regions, whisper, settings.decoding)]
    spoken_languages = [language_name(code) for code in dict.fromkeys(languages)]
    data = {
        "description": describe(events, duration, spoken_languages),
        # The engine passes the pipeline's question explicitly; the prompt's wording is not scanned.
        "answer": QUESTION_NEEDS_GEMINI if task.options.get("question") else "",
        "events": [
            {
                "timestamp": format_clock(e.start),
                "end_timestamp": format_clock(e.end),
                "kind": e.kind,
                "description": e.kind if e.kind != "sound" else "unidentified sound",
                "start": round(e.start, 3),
                "end": round(e.end, 3),
            }
            for e in events
        ],
    }
    provenance = {
        "models": {"events": models.EVENT_DETECTOR_NAME},
        "methods": {"description": "built from detected events only", "mood": MOOD_NOT_ESTIMATED},
        "notes": [MOOD_NOT_ESTIMATED],
    }
    return data, ("description",), provenance


_FILLERS = {
    "transcript": _fill_transcript,
    "translation": _fill_translation,
    "meeting": _fill_meeting,
    "description": _fill_description,
}
