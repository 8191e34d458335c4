"""Speech recognition with faster-whisper, per speech region, language by language.

Whisper's own language detection looks once at the first 30 s, so a recording that switches
language loses every later passage (base Whisper "translates" or drops it). Here:

1. each speech region's language is detected on that region alone, with an *unpadded*
   encoder pass (about a tenth of the cost of a padded 30 s pass);
2. consecutive regions of one language, apart by short pauses, form one stretch, so
   decoding costs about what a whole-file pass costs (separate clips per region would each
   take a padded 30 s window, and an unfinished last sentence yet another);
3. each run of same-language stretches is decoded by one faster-whisper ``transcribe`` call
   with the stretches as ``clip_timestamps``, so its 30 s window walk (an unfinished
   sentence carries into the next window), temperature fallback, no-speech /
   log-probability gates and word alignment apply unchanged;
4. the hallucination guards in :mod:`.guards` clean the result.

Every time here is in seconds from the start of the ``samples`` array passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from runpipe.plugins.local.audio import Region, slice_seconds, speech_overlap
from runpipe.plugins.local.guards import collapse_repeats, is_stock_phrase
from runpipe.plugins.local.languages import text_language
from runpipe.plugins.local.models import LoadedWhisper


@dataclass(frozen=True, slots=True)
class DecodingSettings:
    """How Whisper decodes. The defaults are the guarded ones: no conditioning on previous
    text (a wrong sentence cannot seed the next window), gates on no-speech probability and
    average log-probability, and skipping of invented words over long silences."""

    beam_size: int = 5
    language: str | None = None  # force one language instead of detecting per region
    no_speech_threshold: float = 0.6
    log_prob_threshold: float = -1.0
    compression_ratio_threshold: float = 2.4
    hallucination_silence_threshold: float | None = 2.0
    # Below this a region's detected language is "unsure" and it takes its neighbours'. High,
    # because a false switch costs twice: a wrong language token and an extra decoding clip
    # (measured: 1.7 s of English detected as Finnish at 0.5+).
    language_confidence: float = 0.8
    min_probe_seconds: float = 1.5  # shorter regions are not probed; they take their neighbours' language
    max_gap_seconds: float = 2.0  # a longer pause starts a new stretch (it is not decoded)
    language_probe_seconds: float = 3.0  # how much of a region the language detector hears (cost grows with it)


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


# ---------------------------------------------------------------------------
# Language per region
# ---------------------------------------------------------------------------


def detect_region_languages(
    samples: np.ndarray, regions: Sequence[Region], whisper: LoadedWhisper, settings: DecodingSettings = DecodingSettings()
) -> list[RegionLanguage]:
    """Detect the language of every region on its own audio.

    A region too short or too unclear to judge (probability under
    ``settings.language_confidence``) takes the language of its nearest sure neighbour, so a
    two-word interjection does not become a language switch.
    """
    if settings.language:
        return [RegionLanguage(s, e, settings.language, 1.0) for s, e in regions]
    model = whisper.model
    if not model.model.is_multilingual:
        return [RegionLanguage(s, e, "en", 1.0) for s, e in regions]
    # When every region is short, probe them all rather than none.
    skip_short = any(end - start >= settings.min_probe_seconds for start, end in regions)
    probed = [i for i, (start, end) in enumerate(regions) if not (skip_short and end - start < settings.min_probe_seconds)]
    features = [
        model.feature_extractor(slice_seconds(samples, start, min(end, start + settings.language_probe_seconds)))[..., :-1]
        for start, end in (regions[i] for i in probed)
    ]
    ranked = _probe_languages(whisper, features)
    detected = [RegionLanguage(start, end, "", 0.0) for start, end in regions]
    for index, candidates in zip(probed, ranked):
        start, end = regions[index]
        detected[index] = RegionLanguage(start, end, candidates[0][0], candidates[0][1], candidates)
    return _settle_unsure(_doubt_lone_switches(detected, settings), settings.language_confidence)


_PROBE_BATCH = 16  # probes encoded per call: enough to amortise the call, small enough for memory


def _probe_languages(whisper: LoadedWhisper, features: list[np.ndarray]) -> list[tuple[tuple[str, float], ...]]:
    """Whisper's top three languages for each (mel bins, frames) probe.

    Unpadded: the encoder accepts shorter input, and for language identification the result
    matches the padded 30 s pass at a fraction of the cost. Probes of equal length (most
    regions outlast the probe, so most are) go through the encoder together, which costs
    less than one call each; nothing is padded, so each result is the one it would get alone.
    """
    by_length: dict[int, list[int]] = {}
    for index, feature in enumerate(features):
        by_length.setdefault(feature.shape[-1], []).append(index)
    ranked: list[tuple[tuple[str, float], ...]] = [()] * len(features)
    for indices in by_length.values():
        for first in range(0, len(indices), _PROBE_BATCH):
            batch = indices[first : first + _PROBE_BATCH]
            stacked = np.ascontiguousarray(np.stack([features[i] for i in batch]), dtype=np.float32)
            with whisper.lock:
                encoded = whisper.model.encode(stacked)
                results = whisper.model.model.detect_language(encoded)
            for index, result in zip(batch, results):
                ranked[index] = tuple((token[2:-2], float(prob)) for token, prob in result[:3])
    return ranked


def _doubt_lone_switches(languages: list[RegionLanguage], settings: DecodingSettings) -> list[RegionLanguage]:
    """Mark unsure a short region whose sure language no sure neighbour shares.

    On a short region the detector hears little, and even at high confidence it is wrong
    now and then (measured: 1.7 s of robotic English as Finnish at 0.85). Left alone, such a
    region becomes a one-region "switch" that base Whisper decodes as gibberish in the wrong
    language, often through every fallback temperature. A real switch lasts longer than the
    probe or goes on into the next region, so it survives this.
    """
    sure = [i for i, lang in enumerate(languages) if lang.probability >= settings.language_confidence]
    doubted = list(languages)
    for position, index in enumerate(sure):
        lang = languages[index]
        if lang.end - lang.start >= settings.language_probe_seconds:
            continue
        neighbours = [languages[sure[p]].code for p in (position - 1, position + 1) if 0 <= p < len(sure)]
        if neighbours and lang.code not in neighbours:
            doubted[index] = replace(lang, probability=0.0)
    return doubted


def _settle_unsure(languages: list[RegionLanguage], confidence: float) -> list[RegionLanguage]:
    sure = [lang for lang in languages if lang.probability >= confidence]
    if not sure:  # nothing sure: the most probable detection speaks for every region
        sure = [max(languages, key=lambda lang: lang.probability)] if languages else []
    settled = []
    for lang in languages:
        if lang.probability >= confidence:
            settled.append(lang)
            continue
        middle = (lang.start + lang.end) / 2
        nearest = min(sure, key=lambda other: abs((other.start + other.end) / 2 - middle))
        settled.append(replace(lang, code=nearest.code))
    return settled


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
    """Recognise the speech in ``regions`` of ``samples`` (16 kHz mono float32), with word
    timestamps and the language of each passage. Audio outside the regions is never decoded,
    so silence and noise between them cannot produce text.

    ``languages`` (from :func:`detect_region_languages`) may be passed to reuse a detection;
    otherwise it is run here. Returns segments in time order.
    """
    if not regions:
        return []
    languages = list(languages) if languages is not None else detect_region_languages(samples, regions, whisper, settings)
    segments: list[RecognizedSegment] = []
    for run in _language_runs(plan_stretches(languages, settings)):
        for segment in _decode_run(samples, run, whisper, settings, task="transcribe"):
            cleaned = _guard(snap_to_speech(segment, regions), regions)
            if cleaned is not None:
                segments.append(_settle_language(cleaned, languages, settings))
    return segments


def _language_runs(stretches: list[Stretch]) -> list[list[Stretch]]:
    runs: list[list[Stretch]] = []
    for stretch in stretches:
        if runs and runs[-1][-1].language == stretch.language:
            runs[-1].append(stretch)
        else:
            runs.append([stretch])
    return runs


def _decode_run(
    samples: np.ndarray,
    run: Sequence[Stretch],
    whisper: LoadedWhisper,
    settings: DecodingSettings,
    *,
    task: str,
    with_timestamps: bool = True,
) -> list[RecognizedSegment]:
    """Decode the stretches of ``run`` (one language) in one faster-whisper call."""
    origin = run[0].start
    clip = slice_seconds(samples, origin, run[-1].end)
    clip_timestamps = [t - origin for w in run for t in (w.start, w.end)]
    with whisper.lock:
        raw_segments, _info = whisper.model.transcribe(
            clip,
            language=run[0].language,
            task=task,
            beam_size=settings.beam_size,
            # Translations are marked rough anyway: no temperature fallback, which on base
            # Whisper's translate task fires often and can triple the cost of a segment.
            temperature=[0.0, 0.2, 0.4, 0.6, 0.8, 1.0] if with_timestamps else 0.0,
            condition_on_previous_text=False,
            no_speech_threshold=settings.no_speech_threshold,
            log_prob_threshold=settings.log_prob_threshold,
            compression_ratio_threshold=settings.compression_ratio_threshold,
            word_timestamps=with_timestamps,
            without_timestamps=not with_timestamps,
            hallucination_silence_threshold=settings.hallucination_silence_threshold if with_timestamps else None,
            clip_timestamps=clip_timestamps,
            vad_filter=False,  # the clips already are the speech regions
        )
        raw_segments = list(raw_segments)  # the generator decodes lazily: consume under the lock
    recognized = []
    for seg in raw_segments:
        words = tuple(
            RecognizedWord(w.word.strip(), origin + w.start, origin + w.end, float(w.probability))
            for w in (seg.words or ())
            if w.word.strip()
        )
        # Word times are aligned to the audio; segment timestamp tokens are coarser and
        # often start in the pause before the speech.
        start, end = (words[0].start, words[-1].end) if words else (origin + seg.start, origin + seg.end)
        recognized.append(
            RecognizedSegment(
                start=start,
                end=end,
                text=seg.text.strip(),
                language=run[0].language,
                language_probability=1.0,
                words=words,
                avg_logprob=float(seg.avg_logprob),
                no_speech_prob=float(seg.no_speech_prob),
            )
        )
    return recognized


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


def _settle_language(segment: RecognizedSegment, languages: Sequence[RegionLanguage], settings: DecodingSettings) -> RecognizedSegment:
    """Give ``segment`` the detection confidence of the regions under it; where Whisper was
    unsure, let the text's language (py3langid, restricted to Whisper's own candidates for
    those regions) settle the label."""
    under = [lang for lang in languages if lang.start < segment.end and lang.end > segment.start]
    if not under:
        return segment
    probability = min(lang.probability for lang in under)
    segment = replace(segment, language_probability=probability)
    if probability >= settings.language_confidence:
        return segment
    candidates = tuple(sorted({code for lang in under for code, _ in lang.candidates}))
    verdict = text_language(segment.text, candidates) if len(candidates) > 1 else None
    if verdict and verdict[1] >= 0.9 and verdict[0] != segment.language:
        return replace(segment, language=verdict[0])
    return segment


def translate_spans(
    samples: np.ndarray,
    spans: Sequence[tuple[float, float, str]],
    whisper: LoadedWhisper,
    settings: DecodingSettings = DecodingSettings(),
) -> list[str]:
    """English translations of ``spans`` ``[(start, end, language), ...]`` with Whisper's
    translate task (base Whisper: a rough translation, to be marked as such). One string per
    span, "" where Whisper produced nothing."""
    translations = [""] * len(spans)
    order = sorted(range(len(spans)), key=lambda i: spans[i][0])
    # Group consecutive spans of one language into a single call, one clip per span.
    groups: list[list[int]] = []
    for index in order:
        if groups and spans[groups[-1][-1]][2] == spans[index][2]:
            groups[-1].append(index)
        else:
            groups.append([index])
    for group in groups:
        run = [Stretch(spans[i][0], spans[i][1], spans[i][2], ((spans[i][0], spans[i][1]),)) for i in group]
        pieces = _decode_run(samples, run, whisper, settings, task="translate", with_timestamps=False)
        for index in group:
            start, end, _ = spans[index]
            texts = [p.text for p in pieces if start - 0.05 <= p.start < end]
            translations[index] = " ".join(t for t in texts if t and not is_stock_phrase(t)).strip()
    return translations
