"""Speech recognition with faster-whisper, per speech region, language by language.

Whisper's own language detection looks once at the first 30 s, so a recording that switches
language loses every later passage (base Whisper "translates" or drops it). Here:

1. each speech region's language is detected on that region's own audio (its first
   seconds), unpadded (a fraction of the cost of a padded 30 s pass, and as accurate on
   clear speech); where that probe is unsure, the region padded with silence decides, as
   Whisper's own detection pads a window;
2. the regions of each language are packed into one clip, as faster-whisper's
   ``vad_filter`` packs speech (regions of one language apart by short pauses stay
   joined, pause included), and decoded by one ``transcribe`` call in that language: a
   language switch costs no extra padded windows, and on one-language audio the decode is
   the bare engine's own; on a model of several workers (one thread each, faster than one
   request on all threads), a pack too long for one worker's share is cut in two at a pause;
3. the hallucination guards in :mod:`.guards` clean the result;
4. a non-English pack is translated (Whisper's translate task) over the same windows its
   transcription just encoded, reusing the encoder's output: translation costs a greedy
   decode, not a second pass of the encoder.

Every time here is in seconds from the start of the ``samples`` array passed in.
"""

from __future__ import annotations

import hashlib
import threading
from bisect import bisect_right
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from typing import Iterator, Sequence

import numpy as np

from runpipe.plugins.local.audio import SAMPLE_RATE, Region, slice_seconds, speech_overlap
from runpipe.plugins.local.guards import collapse_repeats, is_phrase_loop, is_repetition_loop, is_stock_phrase
from runpipe.plugins.local.models import LoadedWhisper, whisper_workers


@dataclass(frozen=True, slots=True)
class DecodingSettings:
    """How Whisper decodes: the bare engine's defaults (no conditioning on previous text, so
    a wrong sentence cannot seed the next window; gates on no-speech probability and average
    log-probability), plus how languages are judged and regions packed."""

    beam_size: int = 5
    language: str | None = None  # force one language instead of detecting per region
    no_speech_threshold: float = 0.6
    log_prob_threshold: float = -1.0
    compression_ratio_threshold: float = 2.4
    # An unpadded probe under this probability is redone padded with silence, the way Whisper
    # itself judges a window. Whisper's own threshold (faster-whisper's
    # language_detection_threshold); on 65 dev regions every wrong unpadded probe was under it.
    sure_language: float = 0.5
    # ... padded to this many seconds, not Whisper's 30: the encoder's cost grows faster than
    # its input (a 30 s probe took 2.6 times a 20 s one). On the 36 unsure regions of the dev
    # corpus, padding to 20 s gave the same final language on all 256 regions as padding to
    # 30 s (and as sure a top language as often: 19 times), for 39 % of the encoder time;
    # padding to 15 s the same as 20 s on all 273 regions of today's corpus, for 85 % of the
    # probes' time (10 s: 2 regions of its 10-minute mix changed language).
    unsure_probe_seconds: float = 15.0
    # A region is judged on its first seconds: on the 39 dev regions over 4 s long, their first
    # 6 s gave the language of the whole region every time (the first 4 s: 32 times), and the
    # encoder's cost grows with the length it is given.
    probe_seconds: float = 8.0
    judge_alone_seconds: float = 3.0  # a shorter region under sure_short_language takes its neighbours' language
    sure_short_language: float = 0.8
    min_probe_seconds: float = 0.5  # shorter regions are too short to judge: they take their neighbours' language
    max_gap_seconds: float = 2.0  # same-language regions apart by at most this are decoded with the pause between them
    # Extra audio decoded around each stretch (the bare engine's VAD pads 0.4 s): the VAD's
    # edges can clip a quiet first or last syllable, and Whisper then drops the word.
    context_seconds: float = 0.3
    # Silence between packed stretches where speech of another language is left out: Whisper
    # ends a sentence at it instead of running one speaker's first words into the last words
    # of a stretch it has not heard in between.
    pack_gap_seconds: float = 0.5
    # A pack is cut in two for the workers only where each side keeps this much speech: a
    # shorter piece still costs a whole 30 s window of the encoder (Whisper pads to it).
    min_pack_cut_seconds: float = 15.0
    # Speech that long with no recognised word on it is decoded again on its own (see
    # _unheard_speech). Real pauses inside a VAD region are shorter: the VAD ends a region at
    # 0.3 s of silence, and Whisper's word times leave under 1 s between spoken words.
    unheard_seconds: float = 2.0
    translate_beam_size: int = 1  # the translation is rough either way; greedy halves its decode
    # A translated window whose text compresses better than compression_ratio_threshold is
    # a phrase loop (base Whisper's translate task falls into them); it is decoded again,
    # greedy, with no n-gram of this many tokens repeated, and dropped if it still loops. On
    # the dev corpus' 46 translated windows (its two mixes and 20 non-English files), 6 looped:
    # banning repeated 4-grams left none looping (5-grams: 1, 6-grams: 3). It is not used from
    # the start: it changed 5 of the 40 windows that did not loop (a sentence said twice came
    # back different the second time). Greedy, the retry gives the same text every run; the
    # sampled retry it replaces (five samples at temperature 0.5) did not, took three times as
    # long, and all five samples still looped on one of those windows.
    translate_retry_no_repeat_ngram: int = 4


@dataclass(frozen=True, slots=True)
class RecognizedWord:
    text: str
    start: float
    end: float
    probability: float


@dataclass(frozen=True, slots=True)
class RegionLanguage:
    """The language detected for one speech region, with Whisper's top candidates."""

    start: float
    end: float
    code: str
    probability: float
    candidates: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class RecognizedSegment:
    start: float
    end: float
    text: str
    language: str
    language_probability: float
    words: tuple[RecognizedWord, ...] = ()
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0

    def shifted(self, seconds: float) -> "RecognizedSegment":
        """The same segment ``seconds`` later (to put a window's result on a longer timeline)."""
        return replace(
            self,
            start=self.start + seconds,
            end=self.end + seconds,
            words=tuple(replace(w, start=w.start + seconds, end=w.end + seconds) for w in self.words),
        )


@dataclass(frozen=True, slots=True)
class Stretch:
    """Same-language speech regions decoded as one clip (pauses between them included)."""

    start: float
    end: float
    language: str
    regions: tuple[Region, ...]


@dataclass(frozen=True, slots=True)
class TranslatedText:
    """Whisper's English translation of a stretch of one language, on the recording's timeline."""

    start: float
    end: float
    language: str
    text: str


@dataclass(frozen=True, slots=True)
class RecognizedSpeech:
    segments: tuple[RecognizedSegment, ...]
    translations: tuple[TranslatedText, ...] = ()


# ---------------------------------------------------------------------------
# Language per region
# ---------------------------------------------------------------------------


def detect_region_languages(
    samples: np.ndarray, regions: Sequence[Region], whisper: LoadedWhisper, settings: DecodingSettings = DecodingSettings()
) -> list[RegionLanguage]:
    """The language of every region, detected on that region's own audio.

    Only a region shorter than ``settings.min_probe_seconds`` (unless all are) takes the
    language of its nearest judged neighbour; every other region keeps its own detection,
    whatever its neighbours say.
    """
    if settings.language:
        return [RegionLanguage(s, e, settings.language, 1.0) for s, e in regions]
    model = whisper.model
    if not model.model.is_multilingual:
        return [RegionLanguage(s, e, "en", 1.0) for s, e in regions]
    judged = [i for i, (s, e) in enumerate(regions) if e - s >= settings.min_probe_seconds] or list(range(len(regions)))
    extractor = model.feature_extractor
    probe_frames = round(settings.probe_seconds / extractor.time_per_frame)
    features = [extractor(slice_seconds(samples, *regions[i]))[..., :probe_frames] for i in judged]
    heard = _probe_languages(whisper, features)
    # Unsure: ask again the way Whisper itself asks, the region padded with silence.
    unsure = [k for k, probs in enumerate(heard) if _top(probs)[1] < settings.sure_language]
    if unsure:
        from faster_whisper.audio import pad_or_trim

        padded_frames = round(settings.unsure_probe_seconds / extractor.time_per_frame)
        for k, probs in zip(unsure, _probe_languages(whisper, [pad_or_trim(features[k], padded_frames) for k in unsure])):
            heard[k] = probs
    # A short region the detector is not sure of is too short to judge: it takes the
    # language of a trusted neighbour (measured: 1.7 s of espeak English heard as Finnish at
    # 0.6 between English regions), the nearest one on either side whose language it heard
    # likelier itself (measured: 2.8 s of far-field English, Welsh 0.63 and English 0.34,
    # took Chinese from a 1.2 s neighbour before it, and the bare engine's words "I think
    # there should be a break for Anne" were lost). A sure short region, and every longer
    # one, keeps its own detection whatever its neighbours say.
    position = {index: k for k, index in enumerate(judged)}
    trusted = [
        k for k, index in enumerate(judged)
        if regions[index][1] - regions[index][0] >= settings.judge_alone_seconds or _top(heard[k])[1] >= settings.sure_short_language
    ] or list(range(len(judged)))
    middles = {k: (regions[judged[k]][0] + regions[judged[k]][1]) / 2 for k in trusted}
    languages = []
    for index, (start, end) in enumerate(regions):
        own = position.get(index)
        probs = heard[own] if own is not None else {}
        if own in middles:
            source = own
        else:
            middle = (start + end) / 2
            before = [k for k in trusted if middles[k] <= middle]
            after = [k for k in trusted if middles[k] > middle]
            # the first or last region has trusted neighbours on one side only
            sides = ([max(before, key=middles.get)] if before else []) + ([min(after, key=middles.get)] if after else [])
            source = max(sides, key=lambda k: (probs.get(_top(heard[k])[0], 0.0), -abs(middles[k] - middle)))
        code = _top(heard[source])[0]
        probability = probs[code] if source == own else 0.0  # 0: not judged here, borrowed
        languages.append(RegionLanguage(start, end, code, probability, tuple(sorted(probs.items(), key=lambda item: -item[1])[:3])))
    return languages


def _top(probs: dict[str, float]) -> tuple[str, float]:
    return max(probs.items(), key=lambda item: item[1])


#: Whisper's window, 30 s, in feature frames (its feature extractor's ``nb_max_frames``).
_WINDOW_FRAMES = 3000
# Frames encoded per call, at most: one window's worth. The encoder's attention memory grows
# with batch x length^2; sixteen padded 30 s probes in one call took ~1 GB more RSS.
_PROBE_FRAMES = _WINDOW_FRAMES


def _probe_languages(whisper: LoadedWhisper, features: list[np.ndarray]) -> list[dict[str, float]]:
    """Whisper's language probabilities for each (mel bins, frames) probe. Probes of equal
    length go through the encoder together (nothing is padded, so each result is the one
    it would get alone), the batches side by side on the model's workers."""
    by_length: dict[int, list[int]] = {}
    for index, feature in enumerate(features):
        by_length.setdefault(feature.shape[-1], []).append(index)
    batches = []
    for indices in by_length.values():
        batch_size = max(1, _PROBE_FRAMES // features[indices[0]].shape[-1])
        batches += [indices[first : first + batch_size] for first in range(0, len(indices), batch_size)]
    # the costliest first, so the last to finish is a cheap one
    batches.sort(key=lambda batch: -len(batch) * features[batch[0]].shape[-1])
    decoder = whisper_workers(whisper)

    def probe(batch: list[int]) -> list:
        stacked = np.ascontiguousarray(np.stack([features[i] for i in batch]), dtype=np.float32)
        return decoder.model.model.detect_language(decoder.model.encode(stacked))

    ranked: list[dict[str, float]] = [{}] * len(features)
    with decoder.lock:
        for batch, results in zip(batches, _on_workers(decoder, probe, batches)):
            for index, result in zip(batch, results):
                ranked[index] = {token[2:-2]: float(prob) for token, prob in result}
    return ranked


def plan_stretches(languages: Sequence[RegionLanguage], settings: DecodingSettings = DecodingSettings()) -> list[Stretch]:
    """Join consecutive same-language regions into stretches, starting a new one at a
    language change or a pause longer than ``max_gap_seconds``."""
    stretches: list[Stretch] = []
    for lang in languages:
        if stretches:
            last = stretches[-1]
            if lang.code == last.language and lang.start - last.end <= settings.max_gap_seconds:
                stretches[-1] = replace(last, end=lang.end, regions=last.regions + ((lang.start, lang.end),))
                continue
        stretches.append(Stretch(lang.start, lang.end, lang.code, ((lang.start, lang.end),)))
    return stretches


@dataclass(frozen=True, slots=True)
class PackedClip:
    """Stretches of a recording laid end to end (as faster-whisper's ``vad_filter`` lays
    out speech), and the way back: ``spans[i]`` of the recording starts at ``origins[i]``
    of ``samples``; ``speech[i]`` is where the speech of ``spans[i]`` lies (a span also
    holds context either side of it)."""

    samples: np.ndarray
    spans: tuple[Region, ...]
    origins: tuple[float, ...]
    speech: tuple[Region, ...] = ()

    @classmethod
    def pack(cls, samples: np.ndarray, spans: Sequence[Region], gaps: Sequence[float] = (), speech: Sequence[Region] = ()) -> "PackedClip":
        """``spans`` of ``samples`` end to end, ``gaps[i]`` seconds of silence after span i
        (none where ``gaps`` says nothing); ``speech[i]`` inside span i (all of it if not given)."""
        pieces, origins, at = [], [], 0.0
        for index, (start, end) in enumerate(spans):
            piece = slice_seconds(samples, start, end)
            silence = np.zeros(int((gaps[index] if index < len(gaps) else 0.0) * SAMPLE_RATE), dtype=np.float32)
            origins.append(at)
            pieces += [piece, silence]
            at += (piece.size + silence.size) / SAMPLE_RATE
        samples_out = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
        return cls(samples_out, tuple(spans), tuple(origins), tuple(speech) or tuple(spans))

    def span_of(self, t: float) -> int:
        return max(0, bisect_right(self.origins, t) - 1)

    def word_spans(self, words: Sequence[Region]) -> list[int]:
        """The span each word of one decoded segment (packed start and end, in order) belongs to.

        A word belongs to the span holding its middle, except a word whose middle lies in the
        pause at a join (after one span's speech, before the next one's: their context pads and
        the silence between them), which Whisper may time on either side of the join: it goes
        with its segment's nearest words on speech, and, where its segment runs from one span
        into the next, with the neighbour it is timed closer to. Measured on the dev corpus' 10
        min composed file: a segment's first word "Dogs", its speech at 151.96 s, was timed
        from the previous span's last 0.26 s of speech across its 0.3 s pad into the next span,
        its middle 0.01 s before the join: mapped to the previous span, it came out at 148.7 s
        (the bare engine's 152.02 s) and was counted lost."""
        spans = [self.span_of((start + end) / 2) for start, end in words]
        joins = [self._join_in_pause((start + end) / 2) for start, end in words]
        for index, join in enumerate(joins):
            if join is None:
                continue
            before = next((spans[i] for i in range(index - 1, -1, -1) if joins[i] is None), None)
            after = next((spans[i] for i in range(index + 1, len(words)) if joins[i] is None), None)
            sides = {side for side in (before, after) if side is not None}
            if len(sides) == 1 and sides <= {join, join + 1}:
                spans[index] = sides.pop()
            elif (before, after) == (join, join + 1) and 0 < index < len(words) - 1:
                silence_before = words[index][0] - words[index - 1][1]
                silence_after = words[index + 1][0] - words[index][1]
                if silence_before != silence_after:
                    spans[index] = join + 1 if silence_before > silence_after else join
        return spans

    def _join_in_pause(self, t: float) -> int | None:
        """The join ``t`` lies in the pause at (join i: between spans i and i + 1), if any."""
        for join in range(len(self.spans) - 1):
            speech_end = self.origins[join] + self.speech[join][1] - self.spans[join][0]
            next_speech_start = self.origins[join + 1] + self.speech[join + 1][0] - self.spans[join + 1][0]
            if speech_end < t < next_speech_start:
                return join
        return None

    def to_packed(self, t: float) -> float:
        """Where recording time ``t`` (inside one of the spans, or before the first) lies in ``samples``."""
        span = max(0, bisect_right([start for start, _ in self.spans], t) - 1)
        return self.origins[span] + t - self.spans[span][0]

    def to_recording(self, t: float, span: int) -> float:
        start, end = self.spans[span]
        return start + min(max(t - self.origins[span], 0.0), end - start)


def _decode_spans(stretches: Sequence[Stretch], duration: float, settings: DecodingSettings) -> list[Region]:
    """What of the recording each stretch decodes: the bare engine's VAD chunks (faster-
    whisper's ``vad_filter``), so one-language audio is decoded from the very samples the
    bare engine decodes. Each stretch is widened by ``context_seconds`` on both sides, never
    into a neighbouring stretch's half of the pause between them; and, as that VAD does,
    speech that stops less than ``max_gap_seconds`` before the end runs on to the end
    (measured: a 2 s EmoDB clip decoded without its last 0.2 s came back with "kann" for
    "könnte"; decoded to its end, as the bare engine decodes it, it did not)."""
    pad = settings.context_seconds
    spans = []
    for index, stretch in enumerate(stretches):
        first, last = index == 0, index + 1 == len(stretches)
        before = 0.0 if first else (stretches[index - 1].end + stretch.start) / 2
        after = duration if last else (stretch.end + stretches[index + 1].start) / 2
        end = duration if last and duration - stretch.end < settings.max_gap_seconds else min(stretch.end + pad, after)
        spans.append((max(stretch.start - pad, before), end))
    return spans


# ---------------------------------------------------------------------------
# Recognition
# ---------------------------------------------------------------------------


def transcribe_regions(
    samples: np.ndarray,
    regions: Sequence[Region],
    whisper: LoadedWhisper,
    settings: DecodingSettings = DecodingSettings(),
    *,
    languages: Sequence[RegionLanguage] | None = None,
) -> list[RecognizedSegment]:
    """The segments of :func:`recognize_speech`, without translation."""
    return list(recognize_speech(samples, regions, whisper, settings, languages=languages).segments)


def recognize_speech(
    samples: np.ndarray,
    regions: Sequence[Region],
    whisper: LoadedWhisper,
    settings: DecodingSettings = DecodingSettings(),
    *,
    languages: Sequence[RegionLanguage] | None = None,
    translate: bool = False,
) -> RecognizedSpeech:
    """Recognise the speech in ``regions`` of ``samples`` (16 kHz mono float32), with word
    timestamps and the language of each passage: each passage is decoded in its own
    language, all passages of one language in one call. Audio far from the regions is never
    decoded, so silence and noise between them cannot produce text. With ``translate``,
    non-English passages are also translated to English, over the same encoded windows.

    ``languages`` (from :func:`detect_region_languages`) may be passed to reuse a detection;
    otherwise it is run here. Segments and translations are in time order.
    """
    if not regions:
        return RecognizedSpeech(())
    languages = list(languages) if languages is not None else detect_region_languages(samples, regions, whisper, settings)
    stretches = plan_stretches(languages, settings)
    segments, to_translate, decoder = _recognize_stretches(samples, regions, languages, stretches, whisper, settings, translate)
    unheard = _unheard_speech(regions, languages, segments, settings)
    if unheard:
        # Decoded again on their own, apart from each other (the speech between them is heard).
        more, more_to_translate, _ = _recognize_stretches(samples, regions, languages, unheard, whisper, settings, translate, apart=True)
        heard = [(w.start, w.end) for segment in segments for w in segment.words]
        segments += [segment for segment in more if not _overlaps_any(segment, heard)]
        to_translate += more_to_translate
    # on the decoder's workers too (the panel's seven translated packs: two batches side by side)
    translations = _translate(to_translate, decoder, settings) if to_translate else []
    return RecognizedSpeech(tuple(sorted(segments, key=lambda s: s.start)), tuple(sorted(translations, key=lambda t: t.start)))


def _unheard_speech(
    regions: Sequence[Region], languages: Sequence[RegionLanguage], segments: Sequence[RecognizedSegment], settings: DecodingSettings
) -> list[Stretch]:
    """Speech no recognised word covers for ``settings.unheard_seconds`` or more, as stretches
    of its region's language.

    faster-whisper starts its next window where the last word of a window ends; a last word
    timed seconds late (measured: "At that" 5.8 s after its speech, in a 10-minute dev mix)
    makes it skip the speech in between, and the bare engine loses those words as well
    (measured there: "At that high level, the air is pure." decoded on its own)."""
    words = sorted((w.start, w.end) for segment in segments for w in segment.words)
    unheard = []
    for (start, end), language in zip(regions, languages):
        at = start
        for word_start, word_end in [w for w in words if w[1] > start and w[0] < end] + [(end, end)]:
            if word_start - at >= settings.unheard_seconds:
                unheard.append(Stretch(at, word_start, language.code, ((at, word_start),)))
            at = max(at, word_end)
    # Only between heard words: speech before the first word or after the last is what
    # Whisper itself found no words in (music, noise), as the bare engine does.
    return [s for s in unheard if words and words[0][0] < s.start and s.end < words[-1][1]]


def _overlaps_any(segment: RecognizedSegment, heard: Sequence[Region]) -> bool:
    return any(s < segment.end and e > segment.start for s, e in heard)


def _recognize_stretches(
    samples: np.ndarray,
    regions: Sequence[Region],
    languages: Sequence[RegionLanguage],
    stretches: Sequence[Stretch],
    whisper: LoadedWhisper,
    settings: DecodingSettings,
    translate: bool,
    *,
    apart: bool = False,
) -> tuple[list[RecognizedSegment], list[TranslationJob], LoadedWhisper]:
    """The cleaned segments of ``stretches``, each language's packed and decoded in one call
    (or a few, see :func:`_packs_for_workers`), the translation jobs they leave, and the model
    that decoded them. ``apart``: no two stretches were next to each other in the recording,
    so every join of a pack gets its silence gap."""
    decoder = whisper_workers(whisper)
    packed_stretches = _packs_for_workers(stretches, decoder.workers, settings)
    ordered = sorted((s for pack in packed_stretches for s in pack), key=lambda s: s.start)
    position = {stretch: index for index, stretch in enumerate(ordered)}
    spans = _decode_spans(ordered, samples.size / SAMPLE_RATE, settings)
    packs, runs = [], []
    for pack in packed_stretches:
        indices = [position[s] for s in pack]
        # Silence after a stretch where speech left out of the pack comes before the next one
        # (Whisper then ends a sentence instead of running one speaker's first words into
        # words it has not heard in between); none where only a pause is (the bare engine's
        # VAD joins its chunks without one).
        gaps = [settings.pack_gap_seconds if apart or following != index + 1 else 0.0 for index, following in zip(indices, indices[1:])]
        packs.append(PackedClip.pack(samples, [spans[i] for i in indices], gaps, [(s.start, s.end) for s in pack]))
        # Runs of a pack: its stretches that were apart in the recording (other speech between them).
        runs.append(1 + sum(1 for gap in gaps if gap > 0))
    codes = [pack[0].language for pack in packed_stretches]
    # The loop test knows a pack only by its tokenizer's language: a language cut into several
    # packs is judged by the most runs any of them holds.
    runs_by_language = {code: max(r for c, r in zip(codes, runs) if c == code) for code in codes}
    to_be_translated = translate and any(code != "en" for code in codes)
    # Every pack is decoded as the bare engine decodes it (its windows where Whisper's own
    # seeking puts them: pinned at pauses instead, a German FLEURS passage lost words the bare
    # engine kept); the translation then hears the transcription's windows, and meets the
    # encoder outputs it left.
    with decoder.lock, _loops_told_from_repeats(decoder.model, runs_by_language), \
            _encoder_reused(decoder.model) if to_be_translated else nullcontext({}) as encoded:
        decoded_packs = _decode_packs(packs, codes, decoder, settings)
    segments: list[RecognizedSegment] = []
    to_translate: list[TranslationJob] = []
    for pack, code, pack_runs, (decoded, windows) in zip(packs, codes, runs, decoded_packs):
        if translate and code != "en" and windows:
            to_translate.append(TranslationJob(pack, code, windows, encoded, pack_runs))
        for segment in decoded:
            cleaned = _guard(snap_to_speech(segment, regions), regions)
            if cleaned is not None:
                segments.append(_with_confidence(cleaned, languages))
    return segments, to_translate, decoder


def _packs_for_workers(stretches: Sequence[Stretch], workers: int, settings: DecodingSettings) -> list[list[Stretch]]:
    """The stretches decoded together, pack by pack: each language's, in time order, so a
    language switch costs no extra windows. The longest pack is then cut in two at a pause
    (see :func:`_cut_at_pause`) while that lets the ``workers``, decoding side by side,
    finish sooner: one-language audio is one pack, and would keep every worker but one idle."""
    packs = [[s for s in stretches if s.language == code] for code in dict.fromkeys(s.language for s in stretches)]
    if workers <= 1 or not packs:
        return packs
    while True:
        longest = max(packs, key=_seconds)
        cut = _cut_at_pause(longest, settings.min_pack_cut_seconds)
        if cut is None:
            return packs
        at = packs.index(longest)
        cut_packs = packs[:at] + list(cut) + packs[at + 1 :]
        if _finish(cut_packs, workers) >= _finish(packs, workers):
            return packs
        packs = cut_packs


def _finish(packs: Sequence[Sequence[Stretch]], workers: int) -> float:
    """When the last worker is done, in seconds of speech, the longest packs taken first (as
    :func:`_decode_packs` hands them out)."""
    busy = [0.0] * workers
    for seconds in sorted(map(_seconds, packs), reverse=True):
        busy[busy.index(min(busy))] += seconds
    return max(busy)


def _seconds(pack: Sequence[Stretch]) -> float:
    """Seconds of speech in ``pack`` (the pauses inside its stretches left out: a cut at one
    must share out speech, not remove a pause from the count)."""
    return sum(end - start for stretch in pack for start, end in stretch.regions)


def _cut_at_pause(pack: Sequence[Stretch], min_seconds: float) -> tuple[list[Stretch], list[Stretch]] | None:
    """``pack`` cut in two at the longest pause between its regions in its middle half (by
    seconds of speech before it), or nearest the middle when none lies there; None when no
    cut leaves ``min_seconds`` on both sides. A pause is where the bare engine's VAD, too,
    found no speech, and either side keeps its context into the pause as every stretch does
    (see :func:`_decode_spans`)."""
    regions = [(region, index) for index, stretch in enumerate(pack) for region in stretch.regions]
    total = sum(e - s for (s, e), _ in regions)
    candidates, before = [], 0.0
    for k in range(1, len(regions)):
        before += regions[k - 1][0][1] - regions[k - 1][0][0]
        if min(before, total - before) >= min_seconds:
            pause = regions[k][0][0] - regions[k - 1][0][1]
            candidates.append((total / 4 <= before <= 3 * total / 4, pause, -abs(total / 2 - before), k))
    if not candidates:
        return None
    k = max(candidates)[3]
    first, second = regions[:k], regions[k:]

    def stretches_of(part) -> list[Stretch]:
        by_stretch: dict[int, list[Region]] = {}
        for region, index in part:
            by_stretch.setdefault(index, []).append(region)
        return [Stretch(rs[0][0], rs[-1][1], pack[i].language, tuple(rs)) for i, rs in by_stretch.items()]

    return stretches_of(first), stretches_of(second)


def _decode_packs(
    packs: Sequence[PackedClip], codes: Sequence[str], whisper: LoadedWhisper, settings: DecodingSettings
) -> list[tuple[list[RecognizedSegment], list[float]]]:
    """:func:`_decode` of every pack (``codes``: their languages), ``whisper.workers`` at a
    time (the longest first, so the last to finish is a short one); in the order of
    ``packs``. Call with ``whisper.lock`` held."""
    longest_first = sorted(range(len(packs)), key=lambda i: -packs[i].samples.size)
    decoded = _on_workers(whisper, lambda i: _decode(packs[i], codes[i], whisper, settings), longest_first)
    by_pack = dict(zip(longest_first, decoded))
    return [by_pack[i] for i in range(len(packs))]


@contextmanager
def _loops_told_from_repeats(model, runs: dict[str, int]) -> Iterator[None]:
    """While active, ``model``'s decodes of a pack of several runs (``runs``: by language)
    count a window as a phrase loop by :func:`is_phrase_loop`, not by faster-whisper's
    compression ratio of the window's text, which takes a sentence repeated across runs for a
    loop and decodes the window again at five temperatures. A pack of one run (all
    one-language audio) keeps faster-whisper's own test, as the bare engine decodes it.

    The window is first decoded with faster-whisper's fallback on low log-probability only;
    a result that loops by :func:`is_phrase_loop` is decoded again with its whole fallback, so
    a real loop is handled exactly as the bare engine handles it. Call with ``whisper.lock``
    held; the pack's language is known by its tokenizer's."""
    if all(count <= 1 for count in runs.values()):
        yield  # nothing to tell apart: the model is left as it is
        return
    generate_with_fallback = model.generate_with_fallback

    def judged_by_runs(encoder_output, prompt, tokenizer, options):
        threshold, heard_over = options.compression_ratio_threshold, runs.get(tokenizer.language_code, 1)
        if heard_over <= 1 or threshold is None:
            return generate_with_fallback(encoder_output, prompt, tokenizer, options)
        decoded = generate_with_fallback(encoder_output, prompt, tokenizer, replace(options, compression_ratio_threshold=None))
        if is_phrase_loop(tokenizer.decode(decoded[0].sequences_ids[0]), threshold, heard_over):
            return generate_with_fallback(encoder_output, prompt, tokenizer, options)
        return decoded

    previous = vars(model).get("generate_with_fallback")
    model.generate_with_fallback = judged_by_runs
    try:
        yield
    finally:
        if previous is None:
            del model.generate_with_fallback  # the class's own method again
        else:
            model.generate_with_fallback = previous


def _window_key(features: np.ndarray) -> bytes:
    """What identifies an encoder window: its features' bytes."""
    return hashlib.blake2b(np.ascontiguousarray(features).tobytes(), digest_size=16).digest()


@contextmanager
def _encoder_reused(model) -> Iterator[dict[bytes, object]]:
    """While active, a window ``model`` has encoded already is not encoded again; yields the
    encoder outputs (by :func:`_window_key`), to be used after it too.

    faster-whisper's ``transcribe`` encodes every window itself (it takes no encoder output
    from outside past the first window); translating a pack over the windows its
    transcription just decoded would encode each one twice. Windows are known by their
    features' bytes, so only an identical window is reused. Call with ``whisper.lock`` held."""
    encoded: dict[bytes, object] = {}
    encode = model.encode

    def encode_once(features):
        key = _window_key(features)
        if key not in encoded:
            encoded[key] = encode(features)
        return encoded[key]

    previous = vars(model).get("encode")
    model.encode = encode_once
    try:
        yield encoded
    finally:
        if previous is None:
            del model.encode  # the class's own method again
        else:
            model.encode = previous


def _decode(
    packed: PackedClip, language: str, whisper: LoadedWhisper, settings: DecodingSettings
) -> tuple[list[RecognizedSegment], list[float]]:
    """Decode ``packed`` in ``language`` with the bare engine's settings (call with
    ``whisper.lock`` held): the segments, on the recording's timeline (a segment split where
    it runs from one packed span into another), and where the decoding windows that heard
    them start, in seconds into ``packed.samples``."""
    raw_segments, _info = whisper.model.transcribe(
        packed.samples,
        language=language,
        task="transcribe",
        beam_size=settings.beam_size,
        condition_on_previous_text=False,
        no_speech_threshold=settings.no_speech_threshold,
        log_prob_threshold=settings.log_prob_threshold,
        compression_ratio_threshold=settings.compression_ratio_threshold,
        word_timestamps=True,
        vad_filter=False,  # the clip already is the speech
    )
    raw_segments = list(raw_segments)  # the generator decodes lazily: consume under the lock
    frame = whisper.model.feature_extractor.time_per_frame
    windows = sorted({seg.seek * frame for seg in raw_segments})
    recognized = []
    for seg in raw_segments:
        by_span: dict[int, list] = {}
        words = [word for word in seg.words or () if word.word.strip()]
        for word, span in zip(words, packed.word_spans([(w.start, w.end) for w in words])):
            by_span.setdefault(span, []).append(word)
        for span, words in by_span.items():
            timed = tuple(
                RecognizedWord(w.word.strip(), packed.to_recording(w.start, span), packed.to_recording(w.end, span), float(w.probability))
                for w in words
            )
            recognized.append(
                RecognizedSegment(
                    start=timed[0].start,
                    end=timed[-1].end,
                    # Whisper's words carry their own spacing (none in Chinese or Japanese).
                    text="".join(w.word for w in words).strip() if len(by_span) > 1 else seg.text.strip(),
                    language=language,
                    language_probability=1.0,
                    words=timed,
                    avg_logprob=float(seg.avg_logprob),
                    no_speech_prob=float(seg.no_speech_prob),
                )
            )
    return recognized, windows


def snap_to_speech(segment: RecognizedSegment, regions: Sequence[Region]) -> RecognizedSegment:
    """Keep word times on speech: Whisper's alignment often stretches the first word of a
    segment back across the pause before it (by a second or more), and the last word
    forward across the pause after it. The VAD knows where speech starts and stops.

    A word edge lying in a pause moves to the speech edge inside the word; a word spanning
    a pause keeps only its side of it (the later side for a segment's first word, the
    earlier side for its last word, the larger side otherwise)."""
    if not segment.words or not regions:
        return segment
    snapped = []
    last_index = len(segment.words) - 1
    for index, word in enumerate(segment.words):
        touched = [(max(word.start, s), min(word.end, e)) for s, e in regions if s < word.end and e > word.start]
        if not touched:
            snapped.append(word)
            continue
        if index == 0 and index != last_index:
            start, end = touched[-1]
        elif index == last_index and index != 0:
            start, end = touched[0]
        else:
            start, end = max(touched, key=lambda span: span[1] - span[0])
        snapped.append(replace(word, start=start, end=end))
    return replace(segment, start=snapped[0].start, end=snapped[-1].end, words=tuple(snapped))


def _guard(segment: RecognizedSegment, regions: Sequence[Region]) -> RecognizedSegment | None:
    """Collapse phrase loops; drop stock phrases that sit over non-speech or that the model
    itself doubts. Returns None when nothing real is left."""
    if segment.words:
        words = tuple(collapse_repeats(segment.words, key=lambda w: w.text.lower().strip(".,!?;:")))
        if len(words) != len(segment.words):
            segment = replace(segment, words=words, text=" ".join(w.text for w in words))
    else:
        segment = replace(segment, text=" ".join(collapse_repeats(segment.text.split())))
    if not segment.text.strip():
        return None
    if is_stock_phrase(segment.text):
        mean_probability = (
            sum(w.probability for w in segment.words) / len(segment.words) if segment.words else 0.0
        )
        over_non_speech = speech_overlap(segment.start, segment.end, regions) < 0.5
        doubted = mean_probability < 0.6 or segment.no_speech_prob > 0.3
        if over_non_speech or doubted:
            return None
    return segment


def _with_confidence(segment: RecognizedSegment, languages: Sequence[RegionLanguage]) -> RecognizedSegment:
    """``segment`` with the lowest detection probability of the regions under it."""
    under = [lang.probability for lang in languages if lang.start < segment.end and lang.end > segment.start]
    return replace(segment, language_probability=min(under)) if under else segment


@dataclass(frozen=True, slots=True)
class TranslationJob:
    """A transcribed pack to translate: where its transcription's windows start (seconds into
    ``packed.samples``) and the encoder outputs they left (by :func:`_window_key`)."""

    packed: PackedClip
    language: str
    windows: list[float]
    encoded: dict[bytes, object]
    runs: int = 1  # stretches of the pack that were apart in the recording (see is_phrase_loop)


#: Windows translated per decoder call on a model of one worker. Batched, greedy decoding took
#: half the time of one window after another (identical tokens); each window in a batch holds
#: about 37 MB of cross-attention keys and values, hence the bound.
_TRANSLATE_BATCH = 4
#: Per call on each of several workers, side by side. On one thread too, batching pays: four
#: 30 s windows of the dev corpus' 10-minute mix in one call took 1.22 s, two calls of two
#: 1.40 s, one after another 2.16 s (identical tokens). The windows' buffers come on top of
#: every worker's own, and the peak is what counts (one hour of the dev mix, arenas capped and
#: trimmed per window, see memory: 1298 MiB with two a call, 1228 MiB with one; four took 1.70 GB
#: on an earlier build).
_TRANSLATE_BATCH_ON_WORKERS = 2


@dataclass(slots=True)
class _TranslationCursor:
    """Where the translation of one transcription window of a job has got to, in feature
    frames: it is done at ``end``, where the next window starts."""

    job: TranslationJob
    features: np.ndarray
    seek: int
    end: int

    def heard(self) -> int:
        """Frames its next step hears (its cost: the decoder's tokens follow the speech it hears,
        up to a whole window however little is left before ``end``)."""
        return min(_WINDOW_FRAMES, self.features.shape[-1] - 1 - self.seek)


def _translate(jobs: Sequence[TranslationJob], whisper: LoadedWhisper, settings: DecodingSettings) -> list[TranslatedText]:
    """English translations of the jobs' packs with Whisper's translate task (base Whisper: a
    rough translation, to be marked as such), over the windows their transcription decoded and
    its encoder outputs, window by window as faster-whisper's ``transcribe`` would (no
    conditioning on previous text, timestamps on), but with the windows of every pack and
    language decoded in batches. Each transcription window is translated from its start up
    to where the next one starts; a window hears 30 s (or to the end), as the transcription's
    did, so the first one of each is the transcription's own.

    Greedy; no retry on low log-probability (it fires on most of base Whisper's translations
    and would triple their cost) and no no-speech skip (the transcription found speech here):
    only a window whose text compresses better than ``compression_ratio_threshold`` (a phrase
    loop) is decoded again with no n-gram of ``translate_retry_no_repeat_ngram`` tokens
    repeated, and a window that still loops gives no translation rather than a wrong one."""
    model = whisper.model
    extractor = model.feature_extractor
    cursors = []
    for job in jobs:
        features = extractor(job.packed.samples)
        content = features.shape[-1] - 1  # as faster-whisper counts it
        starts = [round(t / extractor.time_per_frame) for t in job.windows]
        cursors += [_TranslationCursor(job, features, start, end) for start, end in zip(starts, starts[1:] + [content])]
    size = _TRANSLATE_BATCH if whisper.workers <= 1 else _TRANSLATE_BATCH_ON_WORKERS

    def step(batch: list[_TranslationCursor]) -> tuple[list[TranslatedText], list[_TranslationCursor]]:
        return _translate_windows(batch, model, settings), [c for c in batch if c.seek < c.end]

    with whisper.lock:
        translated = _work_through(whisper, cursors, step, size, cost=_TranslationCursor.heard)
    # in an order that does not depend on which worker finished first
    return sorted(translated, key=lambda t: (t.start, t.end, t.language, t.text))


def _work_through(whisper: LoadedWhisper, items: Sequence, work, size: int, *, cost) -> list:
    """The results of ``work(batch)`` over ``items``, which returns a batch's results and the
    items of it to do again (a translation not at its window's end yet). Each of
    ``whisper.workers`` takes the ``size`` costliest items left (by ``cost(item)``) as soon as
    it is free, so no worker waits for another's slowest batch, as rounds of batches would
    (measured on the dev corpus' 10-minute mix: the translation's two threads busy 1.63 of 2,
    one window's second step alone on one worker at the end), and the last to finish is a
    cheap one. Call with ``whisper.lock`` held; the results come in the order the batches finish."""
    pending, results, failed = list(items), [], []
    busy = 0
    changed = threading.Condition()

    def take() -> list | None:
        nonlocal busy
        with changed:
            while not pending and busy and not failed:
                changed.wait()  # a batch being worked may hand items back
            if not pending or failed:
                return None
            pending.sort(key=cost, reverse=True)
            batch = pending[:size]
            del pending[:size]
            busy += 1
            return batch

    def run() -> None:
        nonlocal busy
        while (batch := take()) is not None:
            found, again = [], []
            try:
                found, again = work(batch)
            except BaseException as error:
                failed.append(error)  # the other workers stop at their next take
                raise
            finally:
                with changed:
                    results.extend(found)
                    pending.extend(again)
                    busy -= 1
                    changed.notify_all()

    if whisper.workers <= 1:
        run()
        return results
    with ThreadPoolExecutor(max_workers=whisper.workers, thread_name_prefix="whisper-worker") as pool:
        for future in [pool.submit(run) for _ in range(whisper.workers)]:
            future.result()
    return results


def _on_workers(whisper: LoadedWhisper, work, batches: Sequence) -> list:
    """``work(batch)`` of every batch, in order, ``whisper.workers`` batches at a time (call
    with ``whisper.lock`` held). Each batch's result is the one it gets alone."""
    if len(batches) <= 1 or whisper.workers <= 1:
        return [work(batch) for batch in batches]
    workers = min(whisper.workers, len(batches))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="whisper-worker") as pool:
        return list(pool.map(work, batches))


def _translate_windows(cursors: Sequence[_TranslationCursor], model, settings: DecodingSettings) -> list[TranslatedText]:
    """One window of each cursor translated in one decoder call; each cursor moves on past
    what was translated (faster-whisper's own rule: to the last complete segment)."""
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.tokenizer import Tokenizer
    from faster_whisper.transcribe import get_suppressed_tokens

    extractor = model.feature_extractor
    sizes = [c.heard() for c in cursors]
    windows = [pad_or_trim(c.features[:, c.seek : c.seek + size]) for c, size in zip(cursors, sizes)]
    outputs = [c.job.encoded.get(_window_key(w)) or model.encode(w) for c, w in zip(cursors, windows)]
    tokenizers = [Tokenizer(model.hf_tokenizer, True, task="translate", language=c.job.language) for c in cursors]
    prompts = [list(t.sot_sequence) for t in tokenizers]
    common = dict(
        suppress_blank=True,
        suppress_tokens=list(get_suppressed_tokens(tokenizers[0], [-1])),  # the same in every language
        max_initial_timestamp_index=round(1.0 / model.time_precision),  # faster-whisper's default, 1 s
    )

    def loops(index: int, tokens: list[int]) -> bool:
        return is_phrase_loop(tokenizers[index].decode(tokens), settings.compression_ratio_threshold, cursors[index].job.runs)

    chosen = _generate_watching_loops(model, outputs, prompts, loops, beam_size=settings.translate_beam_size, **common)
    looping = [i for i, tokens in enumerate(chosen) if loops(i, tokens)]
    if looping:
        # greedy still, so the retry is what it is on every run; unwatched: it cannot loop long
        retried = _generate(
            model, [outputs[i] for i in looping], [prompts[i] for i in looping], model.max_length // 2,
            beam_size=1, no_repeat_ngram_size=settings.translate_retry_no_repeat_ngram, **common,
        )
        for i, hypotheses in zip(looping, retried):
            chosen[i] = hypotheses[0]
    still_loops = [i in looping and loops(i, tokens) for i, tokens in enumerate(chosen)]  # the others did not loop
    translated = []
    for cursor, size, tokenizer, tokens, looped in zip(cursors, sizes, tokenizers, chosen, still_loops):
        pieces, seek, _ = model._split_segments_by_timestamps(
            tokenizer=tokenizer, tokens=tokens, time_offset=cursor.seek * extractor.time_per_frame,
            segment_size=size, segment_duration=size * extractor.time_per_frame, seek=cursor.seek,
        )
        # A window whose only complete segment ends at 0.00 would be decoded again forever.
        cursor.seek = seek if seek > cursor.seek else cursor.seek + size
        if looped:
            continue  # still a loop
        packed = cursor.job.packed
        # What starts at the next window's start or later is that window's to translate.
        for piece in (p for p in pieces if p["start"] < cursor.end * extractor.time_per_frame):
            said = tokenizer.decode(piece["tokens"])
            text = " ".join(collapse_repeats(said.split()))
            if piece["start"] == piece["end"] or not text or is_repetition_loop(said, settings.compression_ratio_threshold) or is_stock_phrase(text):
                continue
            span = packed.span_of((piece["start"] + piece["end"]) / 2)
            translated.append(TranslatedText(packed.to_recording(piece["start"], span), packed.to_recording(piece["end"], span), cursor.job.language, text))
    return translated


#: New tokens a translation is decoded by before its text is checked for a phrase loop. Base
#: Whisper's translate loops run on to the decoder's limit (224 tokens on the dev corpus' 10-minute
#: mix, where a real translation of a 30 s window took at most 134), and a loop's first 96 tokens
#: already show it: those windows were a third of the mix's translation time.
_LOOP_CHECK_TOKENS = 96


def _generate_watching_loops(model, outputs: Sequence, prompts: Sequence[list[int]], loops, **options) -> list[list[int]]:
    """The best hypothesis (tokens after the prompt) of ``model.model.generate`` for each window
    (its encoder output and prompt), decoded ``_LOOP_CHECK_TOKENS`` at a time: a window whose
    tokens ``loops(window, tokens)`` by then is left as it is (a loop either way), the others go
    on from where they stopped, as one decode would (greedy: the next tokens are the same)."""
    most = model.max_length // 2
    limit = min(most, _LOOP_CHECK_TOKENS)
    found = [hypotheses[0] for hypotheses in _generate(model, outputs, prompts, limit, **options)]
    # windows cut at the limit, not ended by the decoder itself
    cut = [w for w, tokens in enumerate(found) if len(tokens) >= limit]
    while going_on := [w for w in cut if limit < most and not loops(w, found[w])]:
        limit = min(most, max(len(found[w]) for w in going_on) + _LOOP_CHECK_TOKENS)
        more = _generate(model, [outputs[w] for w in going_on], [prompts[w] + found[w] for w in going_on], limit, **options)
        for w, hypotheses in zip(going_on, more):
            found[w] = hypotheses[0]
        cut = [w for w in going_on if len(found[w]) >= limit]
    return found


def _generate(model, outputs: Sequence, prompts: Sequence[list[int]], tokens: int, **options) -> list[list[list[int]]]:
    """Each window's hypotheses from ``model.model.generate`` (tokens after the prompt, given back
    with any prefix it ends in), at most ``tokens`` long: CTranslate2's Whisper gives at most
    max_length // 2 tokens, a prefix included (224 for Whisper's max_length of 448)."""
    import ctranslate2

    stacked = ctranslate2.StorageView.from_array(np.concatenate([np.asarray(output) for output in outputs]))
    results = model.model.generate(stacked, [list(prompt) for prompt in prompts], max_length=2 * tokens, **options)
    return [[list(hypothesis) for hypothesis in result.sequences_ids] for result in results]
