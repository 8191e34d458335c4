"""The offline analysis of one stretch of a recording, streamed window by window.

Per decode window (about ``window_seconds``, cut in a pause): speech regions, language per
region, recognition, speaker embeddings, a local speaker clustering used only to split
segments where the voice changes, and translation of the non-English passages. The
window's samples are then dropped, so memory stays flat however long the file is. At the
end one global clustering of all embeddings names the speakers. A recording with one talker
per channel is analysed so channel by channel.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from runpipe.plugins.local import models
from runpipe.plugins.local.audio import AudioWindow, VadSettings, stream_windows
from runpipe.plugins.local.channels import ChannelSettings, TalkerChannels, talker_channels
from runpipe.plugins.local.diarize import DiarizationSettings, SpeakerEmbedding, name_speakers, split_by_voice
from runpipe.plugins.local.memory import release_free_memory
from runpipe.plugins.local.transcribe import (
    DecodingSettings,
    RecognizedSegment,
    TranslatedText,
    detect_region_languages,
    recognize_speech,
)


@dataclass(frozen=True, slots=True)
class RecognitionSettings:
    whisper_model_dir: str | None = None
    compute_type: str = "int8"
    cpu_threads: int = 2
    decoding: DecodingSettings = DecodingSettings()
    diarization: DiarizationSettings = DiarizationSettings()
    vad: VadSettings = VadSettings()
    channels: ChannelSettings = ChannelSettings()
    use_vad: bool = True
    diarize: bool = True
    translate: bool = True
    window_seconds: float = 600.0


@dataclass(frozen=True, slots=True)
class Piece:
    """A recognised segment with one speaker, on the analysed stretch's timeline."""

    segment: RecognizedSegment
    translation: str
    speaker: str = "Speaker 1"


@dataclass(frozen=True, slots=True)
class Recognition:
    pieces: tuple[Piece, ...]
    duration: float
    speech_seconds: float
    region_languages: tuple[str, ...] = ()
    speaker_count: int = 0
    windows: int = 0


def _regions(window: AudioWindow, settings: RecognitionSettings):
    if settings.use_vad:
        return list(window.regions)
    # Without VAD, cover the window with Whisper-sized tiles (more invented text over silence).
    step = 30.0
    return [(t, min(t + step, window.duration)) for t in np.arange(0.0, window.duration, step)]


@dataclass
class _Heard:
    """What the windows of one stream (the mix, or one talker's channel) gave."""

    pieces: list[Piece] = field(default_factory=list)
    embeddings: list[SpeakerEmbedding] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)
    duration: float = 0.0
    speech: float = 0.0
    windows: int = 0


def recognize(path: str | Path, start: float, end: float | None, settings: RecognitionSettings) -> Recognition:
    """Analyse ``path`` between ``start`` and ``end`` (seconds; None: to the end). Times in
    the result are relative to ``start``. A recording with one talker per channel is analysed
    channel by channel (see :mod:`channels`), and no voice is shared between channels."""
    whisper = models.whisper_decoder(settings.whisper_model_dir, settings.compute_type, settings.cpu_threads)
    embedder = models.speaker_embedder(settings.cpu_threads) if settings.diarize else None
    talkers = talker_channels(path, start, end, settings.channels)
    if talkers is None:
        heard = [_hear(path, start, end, None, None, whisper, embedder, settings)]
    else:
        heard = [_hear(path, start, end, channel, talkers, whisper, embedder, settings) for channel in range(talkers.count)]
    pieces, speaker_count = _name_speakers([(h.pieces, h.embeddings) for h in heard], settings)
    return Recognition(
        tuple(pieces),
        max(h.duration for h in heard),
        sum(h.speech for h in heard),
        tuple(dict.fromkeys(code for h in heard for code in h.languages)),
        speaker_count,
        sum(h.windows for h in heard),
    )


def _hear(path, start, end, channel: int | None, talkers: TalkerChannels | None, whisper, embedder, settings: RecognitionSettings) -> _Heard:
    heard = _Heard()
    windows = stream_windows(path, start=start, end=end, window_seconds=settings.window_seconds, vad=settings.vad, channel=channel)
    for window in windows:
        heard.windows += 1
        shift = window.offset - start
        heard.duration = shift + window.duration
        regions = _regions(window, settings)
        if talkers is not None:
            regions = talkers.own_regions(channel, regions, shift, settings.channels)
        heard.speech += sum(e - s for s, e in regions)
        languages = detect_region_languages(window.samples, regions, whisper, settings.decoding)
        heard.languages += [lang.code for lang in languages]
        recognized = recognize_speech(window.samples, regions, whisper, settings.decoding, languages=languages, translate=settings.translate)
        segments = list(recognized.segments)
        window_embeddings: list[SpeakerEmbedding] = []
        if embedder is not None:
            segments, window_embeddings = split_by_voice(window.samples, regions, segments, embedder, settings.diarization)
        translations = _translations_of(segments, recognized.translations)
        heard.embeddings += [e.shifted(shift) for e in window_embeddings]
        heard.pieces += [Piece(segment.shifted(shift), translation) for segment, translation in zip(segments, translations)]
        del window, recognized
        release_free_memory()  # the next window starts from what is kept, not this one's peak
    return heard


def _translations_of(segments: list[RecognizedSegment], translated: tuple[TranslatedText, ...]) -> list[str]:
    """Each segment's translation, from the translated texts of its language.

    A text goes to the segment it overlaps (the nearest one where none does). A text over
    several segments (a sentence split where the voice changes) is shared out word by word
    in proportion to each one's overlap, in time order: translating each piece alone would
    mean a second decode. English segments and segments no translation reached get ""."""
    parts: list[list[str]] = [[] for _ in segments]
    for text in translated:
        candidates = sorted((i for i, s in enumerate(segments) if s.language == text.language), key=lambda i: segments[i].start)
        if not candidates:
            continue
        overlaps = [max(0.0, min(segments[i].end, text.end) - max(segments[i].start, text.start)) for i in candidates]
        words = text.text.split()
        if sum(overlaps) == 0 or len(words) == 1:
            middle = (text.start + text.end) / 2
            nearest = max(zip(overlaps, candidates), key=lambda item: (item[0], -abs((segments[item[1]].start + segments[item[1]].end) / 2 - middle)))[1]
            parts[nearest].append(text.text)
            continue
        shares = np.cumsum(overlaps) / sum(overlaps)
        cuts = [0] + [round(share * len(words)) for share in shares]
        for index, first, last in zip(candidates, cuts, cuts[1:]):
            if last > first:
                parts[index].append(" ".join(words[first:last]))
    return [" ".join(p) for p in parts]


def _name_speakers(streams: list[tuple[list[Piece], list[SpeakerEmbedding]]], settings: RecognitionSettings):
    """Labels ``Speaker N`` in order of first appearance, from one clustering of each
    stream's embeddings (each channel's talkers are their own; all are Speaker 1 when
    speakers are not labelled)."""
    labelled: list[tuple[Piece, tuple[int, int]]] = []
    diarization = settings.diarization if len(streams) == 1 else _per_channel(settings.diarization, len(streams))
    for index, (pieces, embeddings) in enumerate(streams):
        pieces = sorted(pieces, key=lambda p: p.segment.start)
        speakers = name_speakers([p.segment for p in pieces], embeddings, diarization)
        labelled += [(p, (index, n) if settings.diarize else (0, 0)) for p, n in zip(pieces, speakers)]
    labelled.sort(key=lambda item: (item[0].segment.start, item[1]))
    numbers: dict[tuple[int, int], int] = {}
    named = [Piece(p.segment, p.translation, f"Speaker {numbers.setdefault(voice, len(numbers)) + 1}") for p, voice in labelled]
    return named, len(numbers)


def _per_channel(diarization: DiarizationSettings, channels: int) -> DiarizationSettings:
    """A count asked of the whole recording bounds each channel's: every channel has its own
    talker, so one channel has at most the count less the other channels."""
    most = diarization.num_speakers or diarization.max_speakers
    return replace(diarization, num_speakers=None, min_speakers=1, max_speakers=None if most is None else max(1, most - channels + 1))
