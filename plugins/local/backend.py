"""``LocalBackend``: answers transcript, translation, meeting and description tasks offline,
with the models the ``local`` extra installs. Nothing is downloaded, ever."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Mapping

from runpipe.errors import BackendError, PipelineConfigError
from runpipe.interfaces import Backend, BackendLimits
from runpipe.model import Analysis, AudioFile, Task, TimeRange
from runpipe.options import option, parse_options
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

@dataclass(frozen=True)
class LocalOptions:
    """The offline backend's options object (``runpipe schema local``)."""

    whisper_model_dir: str | None = option(None, "a local faster-whisper model folder to use instead of the packaged Whisper base")
    compute_type: str = option("int8", "CTranslate2 compute type (int8, int8_float32, float32)")
    cpu_threads: int = option(2, "threads for Whisper and the embedder; Whisper runs this many requests at once (language probes, passages), one thread each", minimum=1)
    beam_size: int = option(5, "Whisper beam size (the bare engine's default)", minimum=1)
    language: str | None = option(None, "force one language code (e.g. en) instead of detecting it per speech region")
    num_speakers: int | None = option(None, "exact number of speakers", minimum=1)
    min_speakers: int = option(1, "fewest speakers to find when counting automatically", minimum=1)
    max_speakers: int | None = option(None, "most speakers to find when counting automatically (default: no limit)", minimum=1)
    diarize: bool = option(True, "label speakers; false labels everything Speaker 1")
    vad: bool = option(True, "recognise only detected speech; false decodes everything")
    translate: bool = option(True, "translate non-English passages with Whisper's translate task")
    window_seconds: float = option(600.0, "decode window for long files, in seconds", minimum=60)
    no_speech_threshold: float = option(0.6, "drop a window whose no-speech probability exceeds this (with low log-prob)", minimum=0, maximum=1)
    log_prob_threshold: float = option(-1.0, "average log-probability below which a window is decoded again hotter, or dropped")
    compression_ratio_threshold: float = option(
        2.4, "a decoded window whose text compresses better than this is a phrase loop: decoded again hotter "
        "(a translation: with translate_retry_no_repeat_ngram; one that still loops is left empty)", minimum=1)
    translate_beam_size: int = option(1, "beam of the translate task (greedy: the translation is rough either way)", minimum=1)
    translate_retry_no_repeat_ngram: int = option(
        4, "a translation that looped is decoded again with no run of this many tokens repeated", minimum=2)


def settings_from_options(options: Mapping[str, Any]) -> RecognitionSettings:
    """Validated :class:`RecognitionSettings` from pipeline options (see :class:`LocalOptions`)."""
    return recognition_settings(parse_options(LocalOptions, options, "backend local"))


def recognition_settings(options: LocalOptions) -> RecognitionSettings:
    language = options.language
    if language is not None and not language.strip():
        raise PipelineConfigError(f"backend local: option language must be a language code such as 'en', got {language!r}")
    if options.max_speakers is not None and options.min_speakers > options.max_speakers:
        raise PipelineConfigError(f"backend local: min_speakers ({options.min_speakers}) is more than max_speakers ({options.max_speakers})")
    decoding = DecodingSettings(
        beam_size=options.beam_size,
        language=language.strip().lower() if language else None,
        no_speech_threshold=options.no_speech_threshold,
        log_prob_threshold=options.log_prob_threshold,
        compression_ratio_threshold=options.compression_ratio_threshold,
        translate_beam_size=options.translate_beam_size,
        translate_retry_no_repeat_ngram=options.translate_retry_no_repeat_ngram,
    )
    return RecognitionSettings(
        whisper_model_dir=options.whisper_model_dir or None,
        compute_type=options.compute_type,
        cpu_threads=options.cpu_threads,
        decoding=decoding,
        diarization=DiarizationSettings(num_speakers=options.num_speakers, min_speakers=options.min_speakers, max_speakers=options.max_speakers),
        use_vad=options.vad,
        diarize=options.diarize,
        translate=options.translate,
        window_seconds=options.window_seconds,
    )


class LocalBackend(Backend):
    """Offline transcription, speakers, languages, rough translation,
    extractive summary and sound events, from models installed with ``runpipe[local]``."""

    name: ClassVar[str] = "local"
    auto_rank: ClassVar[int] = 10  # `backend: auto` falls back to the offline models
    # Long files are streamed in windows inside the backend; the engine need not chunk them.
    limits: ClassVar[BackendLimits] = BackendLimits()
    Options = LocalOptions

    def __init__(self, options: Mapping[str, Any] | None = None):
        super().__init__(options)  # self.settings: the LocalOptions, every type and range checked
        self.recognition = recognition_settings(self.settings)

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
        """Load what every analysis uses before the first one starts: Whisper, and with
        speakers the embedder and the clustering library (SciPy's import took 0.4 s, paid
        by the first file otherwise)."""
        models.require_packages()
        models.whisper_decoder(self.settings.whisper_model_dir, self.settings.compute_type, self.settings.cpu_threads)
        if self.settings.diarize:
            models.speaker_embedder(self.settings.cpu_threads)
            importlib.import_module("scipy.cluster.hierarchy")

    def analyze(self, audio: AudioFile, task: Task, *, window: TimeRange | None = None) -> Analysis:
        models.require_packages()
        if audio.path is None:
            raise BackendError(f"the local backend needs a local audio file; {audio.source.uri} was not downloaded")
        settings = self.recognition
        # The engine's question is for the filler, not a recognition setting.
        recognition_options = {k: v for k, v in task.options.items() if k != "question"}
        if recognition_options:
            settings = settings_from_options({**self.options, **recognition_options})
        start = window.start if window else 0.0
        end = window.end if window else None
        fill = _FILLERS.get(task.schema_name)
        if fill is None:
            raise BackendError(
                f"the local backend cannot fill schema {task.schema_name!r} (task {task.name}); it answers "
                f"{', '.join(sorted(_FILLERS))}. Use the Gemini backend for this task."
            )
        # the source itself, as the bare engine decodes it (PyAV reads every format ffmpeg normalized from)
        path, start, end = audio.source_stretch(start, end)
        data, estimated, provenance = fill(path, task, settings, start, end)
        whisper = models.whisper_decoder(settings.whisper_model_dir, settings.compute_type, settings.cpu_threads)
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


def _fill_transcript(path, task, settings, start, end, *, english_copy: bool = False, emotion_field: bool = True):
    """``emotion_field``: the schema has a per-segment emotion, which is left out and noted."""
    recognition = recognize(path, start, end, settings)
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


def _fill_translation(path, task, settings, start, end):
    # The translation schema asks for English in every segment: English speech is its own.
    return _fill_transcript(path, task, replace(settings, translate=True), start, end, english_copy=True, emotion_field=False)


def _fill_meeting(path, task, settings, start, end):
    data, estimated, provenance = _fill_transcript(path, task, settings, start, end, emotion_field=False)
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


def _fill_description(path, task, settings, start, end):
    detector = models.event_detector()
    whisper = models.whisper_decoder(settings.whisper_model_dir, settings.compute_type, settings.cpu_threads)
    events, languages, duration = [], [], 0.0
    for window in stream_windows(path, start=start, end=end, window_seconds=settings.window_seconds, vad=settings.vad):
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
