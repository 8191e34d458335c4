"""The ``retime`` post-processing step: speech regions from the bundled voice-activity model
(their onsets refined on the signal's energy), words recognised in them (language per region; the regions packed end to end, pauses left
out) by the same Whisper model the offline backend loads (once per process), and the
backend's words aligned to them.

What the audio yields is cached under the audio's hash, so a rerun, or a second task on the
same input, recognises nothing twice.
"""

from __future__ import annotations

import dataclasses
import json
from bisect import bisect_right
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from runpipe.atomic import write_atomic
from runpipe.interfaces import PostProcessor
from runpipe.model import AudioFile, Document, Segment
from runpipe.paths import cache_dir
from runpipe.options import option
from runpipe.plugins.retime.align import RetimeSettings, TimedWord, retime_segments
from runpipe.store import cache_key

if TYPE_CHECKING:
    import numpy as np  # the offline models' extra: imported only when re-timing runs

Region = tuple[float, float]


@dataclasses.dataclass(frozen=True, slots=True)
class Heard:
    """What the audio says, independent of any backend: speech regions and timed words."""

    regions: tuple[Region, ...]
    words: tuple[TimedWord, ...]

    def shifted(self, seconds: float) -> "Heard":
        """The same, ``seconds`` later (from the decoded file's timeline to the document's)."""
        if not seconds:
            return self
        return Heard(tuple((s + seconds, e + seconds) for s, e in self.regions),
                     tuple(TimedWord(w.text, w.start + seconds, w.end + seconds) for w in self.words))


#: Silence put between stretches of speech when they are packed into one clip for recognition.
PACKING_GAP_SECONDS = 0.3


@dataclasses.dataclass(frozen=True, slots=True)
class PackedSpeech:
    """Stretches of a recording laid end to end, ``gap`` seconds apart.

    Whisper encodes audio in 30 s windows whatever their content, so recognising stretches one
    by one pays a full window for every short stretch (about 0.2 x real time on speech with long
    pauses); packed, long pauses cost nothing and a window holds up to 30 s of speech.
    """

    samples: np.ndarray
    spans: tuple[Region, ...]  # where each stretch lies in ``samples``
    origins: tuple[float, ...]  # where each stretch starts in the recording

    @classmethod
    def pack(cls, samples: np.ndarray, stretches: Sequence[Region], gap: float = PACKING_GAP_SECONDS) -> "PackedSpeech":
        import numpy as np

        from runpipe.plugins.local.audio import SAMPLE_RATE, slice_seconds

        silence = np.zeros(int(gap * SAMPLE_RATE), np.float32)
        pieces, spans, cursor = [], [], 0.0
        for start, end in stretches:
            piece = slice_seconds(samples, start, end)
            spans.append((cursor, cursor + piece.size / SAMPLE_RATE))
            pieces += [piece, silence]
            cursor += (piece.size + silence.size) / SAMPLE_RATE
        return cls(np.concatenate(pieces) if pieces else silence, tuple(spans), tuple(s for s, _ in stretches))

    def to_packed(self, t: float) -> float:
        """A time inside one of the stretches as a time in the packed clip."""
        index = max(0, bisect_right(self.origins, t) - 1)
        return self.spans[index][0] + t - self.origins[index]

    def to_recording(self, t: float, *, starts_word: bool) -> float:
        """A time in the packed clip as a time in the recording. A time in the silence between
        two stretches goes to the edge of the stretch its word belongs to: a word's start to the
        next stretch, its end to the previous one."""
        index = max(0, bisect_right([s for s, _ in self.spans], t) - 1)
        start, end = self.spans[index]
        if starts_word and t > end and index + 1 < len(self.spans):
            return self.origins[index + 1]
        return self.origins[index] + min(max(t - start, 0.0), end - start)


@dataclasses.dataclass(frozen=True)
class RetimeOptions(RetimeSettings):
    """The ``retime`` step's options: the aligner's (:class:`RetimeSettings`) and how the audio
    is heard."""

    enabled: bool = option(True, "re-time segments against the audio; false keeps the backend's times, in time order")
    trust_local: bool = option(True, "keep a document whose every segment carries word times measured on the audio "
                               "(the offline backend's, Gemini Transcribe's) as it is; when only some do, align the "
                               "others with their words instead of recognising their speech again")
    # Beam 2: the starts of beam 5 (bench_retime: the same errors on every file and drift) for
    # 12-18 % less CPU, 1-2 % fewer words anchored (the sample 92.6 % not 93.6 %, the panel 87.3 %
    # not 88.6 %, the dialogue 94.7 % either way). Greedy (1) saves little more and misheard the
    # sample's 'That is exactly', leaving that turn interpolated.
    beam_size: int = option(2, "Whisper's beam when recognising the words that anchor segments (1 is greedy)",
                            minimum=1, maximum=10)
    # One thread: the decoder's small steps keep two threads waiting on each other (measured:
    # 13 % less CPU on the dialogue and the panel, the same words; its wall time was lower too at
    # load 5-6, and on idle cores two threads kept only 1.3-1.4 of them busy).
    cpu_threads: int = option(1, "threads for Whisper while re-timing", minimum=1, maximum=16)
    whisper_model_dir: str | None = option(None, "the folder of the Whisper model (default: the offline backend's)")
    # Silero's probability rises a few hundred milliseconds into a soft start (a breathy
    # consonant, a quiet first syllable: 0.3-0.7 s measured on the dev recordings).
    onset_look_back_seconds: float = option(1.0, "how far a speech passage's onset may move back onto the first "
                                            "sound the voice-activity model missed (0: not at all)", minimum=0, maximum=3)
    onset_drop_db: float = option(25.0, "a frame within this many dB of the passage's loudest counts as its sound",
                                  minimum=0)
    onset_above_floor_db: float = option(12.0, "... and only when this many dB above the pause's noise floor",
                                         minimum=0)


#: An onset moves back only across gaps this short between loud frames.
ONSET_BRIDGE_SECONDS = 0.12


def refine_onsets(samples: np.ndarray, regions: Sequence[Region], options: RetimeOptions = RetimeOptions()) -> list[Region]:
    """Regions whose onsets start where the sound does.

    Silero's probability rises a few hundred milliseconds into a soft start (a breathy
    consonant, a quiet first syllable: 0.3-0.7 s measured on the dev recordings), and a segment
    start is judged by where its first sound is. So each onset moves back, at most
    ``onset_look_back_seconds`` and never into the region before, over 10 ms frames loud relative
    to the passage (within ``onset_drop_db`` of its loudest frame in the first 2 s) and to the
    pause before it (``onset_above_floor_db`` over its quietest tenth, so background noise does
    not count).
    """
    import numpy as np

    from runpipe.plugins.local.audio import SAMPLE_RATE

    frame = SAMPLE_RATE // 100
    bridge = int(ONSET_BRIDGE_SECONDS * 100)
    refined: list[Region] = []
    for index, (start, end) in enumerate(regions):
        earliest = max(regions[index - 1][1] if index else 0.0, start - options.onset_look_back_seconds)
        first, last = int(earliest * SAMPLE_RATE) // frame, int(min(end, start + 2.0) * SAMPLE_RATE) // frame
        frames = samples[first * frame:last * frame]
        onset = int(start * SAMPLE_RATE) // frame - first
        if frames.size < frame or onset <= 0 or onset * frame >= frames.size:
            refined.append((start, end))
            continue
        level = 10 * np.log10(np.square(frames[: frames.size // frame * frame].reshape(-1, frame), dtype=np.float64).mean(axis=1) + 1e-10)
        pause = level[:onset]
        floor = float(np.percentile(pause, 10)) if pause.size >= 10 else -100.0
        threshold = max(float(level[onset:].max()) - options.onset_drop_db, floor + options.onset_above_floor_db)
        while True:
            louder = [j for j in range(onset - 1, max(onset - 1 - bridge, -1), -1) if level[j] >= threshold]
            if not louder:
                break
            onset = louder[0]
        refined.append(((first + onset) * frame / SAMPLE_RATE, end))
    return refined


def listen(path: Path, start: float, end: float | None, options: RetimeOptions = RetimeOptions(), *,
           known: Sequence[Region] = ()) -> Heard:
    """Speech regions and recognised words of ``path`` between ``start`` and ``end``, each
    region heard in the language detected on its own audio. A region whose middle lies in one
    of the ``known`` spans (the recording's times of segments that carry measured words) is
    found but not recognised."""
    from runpipe.plugins.local import models
    from runpipe.plugins.local.audio import VadSettings, stream_windows
    from runpipe.plugins.local.transcribe import DecodingSettings, detect_region_languages, plan_stretches, transcribe_regions

    models.require_packages()
    whisper = models.whisper_model(options.whisper_model_dir, cpu_threads=options.cpu_threads)
    vad = VadSettings()
    decoding = DecodingSettings(beam_size=options.beam_size)
    regions: list[Region] = []
    words: list[TimedWord] = []
    for window in stream_windows(path, start=start, end=end, vad=vad):
        # The VAD pads each region; the speech itself starts and ends a pad inside it (or, for
        # a soft start, earlier: refine_onsets).
        unpadded = [(s + vad.pad_seconds, e - vad.pad_seconds) for s, e in window.regions]
        regions += [(window.offset + s, window.offset + e) for s, e in refine_onsets(window.samples, unpadded, options)]
        to_hear = [(s, e) for s, e in window.regions if not _inside(window.offset + (s + e) / 2, known)]
        if not to_hear:
            continue
        # Language per region, on the recording. Short pauses stay inside a stretch (Whisper
        # hears words the VAD missed, a quiet "hello?" in a pause); longer ones are packed away.
        languages = detect_region_languages(window.samples, to_hear, whisper, decoding)
        packed = PackedSpeech.pack(window.samples, [(s.start, s.end) for s in plan_stretches(languages, decoding)])
        packed_languages = [
            dataclasses.replace(lang, start=packed.to_packed(lang.start), end=packed.to_packed(lang.end)) for lang in languages
        ]
        packed_regions = [(lang.start, lang.end) for lang in packed_languages]
        for segment in transcribe_regions(packed.samples, packed_regions, whisper, decoding, languages=packed_languages):
            for word in segment.words:
                word_start = packed.to_recording(word.start, starts_word=True)
                word_end = max(word_start, packed.to_recording(word.end, starts_word=False))
                words.append(TimedWord(word.text, window.offset + word_start, window.offset + word_end))
    return Heard(tuple(regions), tuple(words))


def _inside(t: float, spans: Sequence[Region]) -> bool:
    return any(start <= t <= end for start, end in spans)


def _cached_listen(path: Path, content_hash: str, start: float, end: float | None, options: RetimeOptions,
                   known: Sequence[Region]) -> Heard:
    hearing = (options.beam_size, options.whisper_model_dir, options.onset_look_back_seconds, options.onset_drop_db,
               options.onset_above_floor_db, known)  # what changes what is heard
    key = cache_key("retime-heard/5", content_hash, path.name, start, end, *hearing)
    stored = cache_dir("retime") / f"{key}.json"
    if stored.exists():
        data = json.loads(stored.read_text())
        return Heard(tuple(map(tuple, data["regions"])), tuple(TimedWord(*w) for w in data["words"]))
    heard = listen(path, start, end, options, known=known)
    write_atomic(stored, json.dumps({"regions": heard.regions, "words": [(w.text, w.start, w.end) for w in heard.words]}))
    return heard


def hear(audio: AudioFile, start: float = 0.0, end: float | None = None, options: RetimeOptions = RetimeOptions(), *,
         known: Sequence[Region] = ()) -> Heard:
    """What :func:`listen` hears of ``audio`` between ``start`` and ``end`` (cached), on the
    audio's timeline.

    Heard in the source itself where it is a local file, as the offline backend hears it: the
    normalized copy is for uploading (32 kbps Vorbis), and its artefacts change Whisper's words
    (on it the sample's "Thanks for having me" came back as "I don't want to be in")."""
    path, source_start, source_end = audio.source_stretch(start, end)
    offset = source_start - start
    shifted_known = tuple((s + offset, e + offset) for s, e in known)
    return _cached_listen(path, audio.content_hash, source_start, source_end, options, shifted_known).shifted(-offset)


def _has_word_times(segment: Segment) -> bool:
    return bool(segment.words) and all(w.start is not None and w.end is not None for w in segment.words)


class RetimeStep(PostProcessor):
    """Segment times taken from the audio; its options are :class:`RetimeOptions`."""

    name = "retime"
    on_by_default = True
    Options = RetimeOptions
    settings: RetimeOptions

    def process(self, document: Document) -> Document:
        if not document.segments:
            return document
        if not self.settings.enabled:  # the backend's times, in time order
            return dataclasses.replace(document, segments=tuple(sorted(document.segments, key=lambda s: s.start)))
        duration = document.audio.duration or max((s.end or s.start) for s in document.segments)
        # segments timed on this very audio (by the offline backend, by Gemini Transcribe)
        measured = [s for s in document.segments if s.timing == "aligned"] if self.settings.trust_local else []
        if len(measured) == len(document.segments):
            return document
        reason = self._cannot_align(document)
        if reason:
            return self._approximate(document, duration, reason)
        window = document.time_range
        start, end = (max(0.0, window.start - 5.0), None if window.end is None else window.end + 5.0) if window else (0.0, None)
        # the words those carry are evidence as good as any heard here: their speech is not recognised again
        carriers = [s for s in measured if s.end is not None and _has_word_times(s)]
        known = tuple((s.start, s.end) for s in carriers)
        heard = hear(document.audio, start, end, self.settings, known=known)
        carried = [TimedWord(w.text, w.start, w.end) for s in carriers for w in s.words]  # type: ignore[arg-type]
        words = sorted(heard.words + tuple(carried), key=lambda w: w.start)
        segments, stats = retime_segments(document.segments, words, heard.regions, duration, self.settings)
        if stats.placed == 0:
            return self._approximate(document, duration, "no speech was found in the audio")
        note = (f"re-timed {stats.placed} of {stats.segments} segments against the audio "
                f"({stats.aligned} aligned, {stats.interpolated} interpolated, {stats.passage} placed on speech passages; "
                f"{stats.anchored_words} of {stats.words} words anchored)")
        return dataclasses.replace(document, segments=segments, notes=document.notes + (note,))

    @staticmethod
    def _cannot_align(document: Document) -> str | None:
        from runpipe.plugins.local.models import missing_packages

        if document.audio.path is None:
            return "the input is a remote reference (URL), so there is no local audio to align against"
        missing = missing_packages()
        if missing:
            return f"re-timing needs the offline models ({', '.join(missing)} missing; pip install 'runpipe[local]')"
        return None

    @staticmethod
    def _approximate(document: Document, duration: float, reason: str) -> Document:
        segments = tuple(sorted((
            dataclasses.replace(
                s, start=min(s.start, duration), end=None if s.end is None else min(s.end, duration),
                timing="approximate", anchored_share=0.0,
            )
            for s in document.segments
        ), key=lambda s: s.start))  # the backend's times, in time order
        note = f"segment times are the backend's own, approximate: {reason}"
        return dataclasses.replace(document, segments=segments, notes=document.notes + (note,))
