"""How the description schema says a clip feels: the mood of its music, its energy, the
language of its lyrics, the emotion of its speech. The Markdown export and the HTML report both
read these fields, so their vocabulary and wording live here once.

The vocabularies are the enums of ``schemas/description.schema.json`` (a test keeps them equal):
eight moods that listeners and music-emotion datasets agree on well enough to be told apart
(valence x arousal quadrants, two each, plus "dark" and "triumphant" that film and game music
need), ``other`` with free text in ``mood_detail`` for what they miss, and the transcript's four
speech emotions, which the audio documentation's own schema uses.
"""

from __future__ import annotations

from typing import Any, Mapping

MOODS = ("joyful", "calm", "tender", "melancholic", "tense", "dark", "triumphant", "playful", "other")
ENERGIES = ("low", "medium", "high")
SPEECH_EMOTIONS = ("happy", "sad", "angry", "neutral")
#: Event kinds that carry a mood and an energy.
MUSICAL_KINDS = ("music", "singing")


def known_mood(value: Any) -> str | None:
    """The mood as a vocabulary word, or None (missing, or a word the vocabulary lacks)."""
    word = value.strip().lower() if isinstance(value, str) else ""
    return word if word in MOODS else None


def mood_phrase(item: Mapping[str, Any]) -> str:
    """``melancholic (wistful)``, ``wistful`` for "other", or "" when the item gives no mood."""
    mood = item.get("mood") if isinstance(item.get("mood"), str) else ""
    detail = item.get("mood_detail") if isinstance(item.get("mood_detail"), str) else ""
    mood, detail = mood.strip(), detail.strip()
    if mood.lower() == "other" and detail:
        return detail
    if mood and detail and detail.lower() != mood.lower():
        return f"{mood} ({detail})"
    return mood or detail


def event_feelings(item: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, value) pairs for what an event says about how it feels, in reading order."""
    pairs = []
    mood = mood_phrase(item)
    if mood:
        pairs.append(("mood", mood))
    for key, label in (("energy", "energy"), ("emotion", "emotion")):
        value = item.get(key)
        if isinstance(value, str) and value.strip():
            pairs.append((label, value.strip()))
    language = item.get("lyrics_language") or item.get("lyrics_language_code")
    if isinstance(language, str) and language.strip():
        pairs.append(("lyrics", language.strip()))
    return pairs


#: Keys of an event rendered through :func:`event_feelings` rather than one by one.
FEELING_KEYS = frozenset({"mood", "mood_detail", "energy", "emotion", "lyrics_language", "lyrics_language_code"})
