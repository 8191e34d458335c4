"""Guards against text Whisper invents: repeated-phrase loops and the stock phrases it writes
over silence or music (closing credits, "thanks for watching", ...), learned from video
subtitles in its training data."""

from __future__ import annotations

import re
import zlib
from collections import Counter
from typing import Sequence, TypeVar

# Stock phrases Whisper is known to produce over non-speech, in its most common languages.
# Matched against a whole segment (after trimming punctuation), so a real sentence that merely
# contains "thank you" is never touched.
_FILLER_PATTERNS = [
    r"(thanks|thank you)( (so|very) much)? for (watching|listening|viewing)",
    r"(please )?(like and )?subscribe( to (my|our|the) channel)?",
    r"(subtitles|subtitled|captions|captioned|transcribed|transcription|translated|translation) by .*",
    r".*amara\.org.*",
    r"see you (in the )?next (time|video|episode)",
    r"thank you",
    r"you",
    r"untertitel (im auftrag|von|der|des|by) .*",
    r"untertitelung .*",
    r"(vielen )?dank (fürs|für's|für das) (zuschauen|zusehen|zuhören)",
    r"bis zum nächsten (mal|video)",
    r"sous[- ]titr(es|age) (réalisés? )?(par|de) .*",
    r"merci d'avoir regardé( cette vidéo)?",
    r"sottotitoli (creati |a cura |di |by ).*",
    r"grazie (per la visione|a tutti)",
    r"subtítulos (realizados |hechos )?(por|de) .*",
    r"gracias por ver( el video)?",
    r"obrigad[oa] por assistir",
    r"legendas? (pela|por) .*",
    r"ondertiteling .*",
    r"napisy (stworzone |wykonane )?(przez|by) .*",
    r"продолжение следует",
    r"(редактор|корректор) субтитров .*",
    r"субтитры (сделал|создавал|подогнал) .*",
    r"ご視聴ありがとうございました",
    r"字幕.*",
    r"請不吝點贊.*",
]
_FILLER = re.compile(r"^(?:" + "|".join(_FILLER_PATTERNS) + r")$", re.IGNORECASE)
_TRIM = re.compile(r"^[\s\W_]+|[\s\W_]+$", re.UNICODE)


def is_stock_phrase(text: str) -> bool:
    """True when the whole of ``text`` is one of Whisper's well-known invented phrases."""
    core = _TRIM.sub("", text.strip().lower())
    return bool(core) and bool(_FILLER.match(core))


T = TypeVar("T")


def _normal(word: str) -> str:
    return _TRIM.sub("", word.lower())


def collapse_repeats(items: Sequence[T], key=_normal, min_repeats: int = 3, max_phrase: int = 8) -> list[T]:
    """Drop phrase loops: any run of 1..``max_phrase`` words repeated ``min_repeats`` or more
    times in a row is kept once. ``items`` are words (strings or word objects; ``key`` maps
    an item to its comparable form). A phrase said twice is left alone: people do that."""
    keys = [key(item) for item in items]
    kept: list[T] = []
    index = 0
    while index < len(items):
        collapsed = False
        for size in range(1, max_phrase + 1):
            phrase = keys[index : index + size]
            if len(phrase) < size or not any(phrase):
                break
            repeats = 1
            while keys[index + repeats * size : index + (repeats + 1) * size] == phrase:
                repeats += 1
            if repeats >= min_repeats:
                kept.extend(items[index : index + size])
                index += repeats * size
                collapsed = True
                break
        if not collapsed:
            kept.append(items[index])
            index += 1
    return kept


def is_repetition_loop(text: str, threshold: float = 2.4) -> bool:
    """True when ``text`` compresses better than ``threshold`` (its bytes over their zlib
    size): a decoder caught in a loop ("the sun is shining, and the sun is shining, and ...").
    Whisper's own test for a failed decode (faster-whisper's compression_ratio_threshold,
    2.4); real sentences stay well under it (measured: 0.9-1.6 on the dev corpus' windows)."""
    data = text.strip().encode("utf-8")
    return bool(data) and len(data) / len(zlib.compress(data)) > threshold


_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s*")


def is_phrase_loop(text: str, threshold: float = 2.4, runs: int = 1) -> bool:
    """Whisper's test for a failed decode (:func:`is_repetition_loop`), for text heard over
    ``runs`` stretches of audio that were apart in the recording and are laid end to end in one
    clip (a language's passages, packed).

    Speech repeats across such stretches: a sentence said in several passages is one sentence
    per passage, not a decoder loop (measured: a 10-minute dev mix repeats its clips, and its
    German pack said "Das will sie am Mittwoch abgeben." seven times in one window, right, at a
    compression ratio of 2.8; the hotter decodes that test forced cost 35 of the run's 100 s and
    gave worse text). So each distinct sentence counts once, and only a sentence said more times
    than there are stretches, or text that still compresses too well, is a loop. One stretch:
    exactly Whisper's test."""
    if runs <= 1:
        return is_repetition_loop(text, threshold)
    sentences = [s for s in _SENTENCE_END.split(text.strip()) if s]
    said = Counter(_TRIM.sub("", s.lower()) for s in sentences)
    if said and max(said.values()) > runs:
        return True
    return is_repetition_loop(" ".join(dict.fromkeys(sentences)), threshold)
