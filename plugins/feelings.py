"""How the description schema says a clip feels: the mood of its music, its energy, the
language of its lyrics, the emotion of its speech. The Markdown export and the HTML report both
read these fields (typed as :class:`runpipe.model.Feelings`), so their vocabulary and wording
live here once.

The vocabularies are the enums of ``schemas/description.schema.json`` (a test keeps them equal):
eight moods that listeners and music-emotion datasets agree on well enough to be told apart
(valence x arousal quadrants, two each, plus "dark" and "triumphant" that film and game music
need), ``other`` with free text in ``mood_detail`` for what they miss, and the transcript's four
speech emotions, which the audio documentation's own schema uses.
"""

from __future__ import annotations

from typing import Any

from runpipe.model import Feelings

MOODS = ("joyful", "calm", "tender", "melancholic", "tense", "dark", "triumphant", "playful", "other")
ENERGIES = ("low", "medium", "high")
SPEECH_EMOTIONS = ("happy", "sad", "angry", "neutral")
#: Event kinds that carry a mood and an energy.
MUSICAL_KINDS = ("music", "singing")


def known_mood(value: Any) -> str | None:
    """The mood as a vocabulary word, or None (missing, or a word the vocabulary lacks)."""
    word = value.strip().lower() if isinstance(value, str) else ""
    return word if word in MOODS else None


def mood_phrase(feelings: Feelings) -> str:
    """``melancholic (wistful)``, ``wistful`` for "other", or "" when there is no mood."""
    mood, detail = feelings.mood or "", feelings.mood_detail or ""
    if mood.lower() == "other" and detail:
        return detail
    if mood and detail and detail.lower() != mood.lower():
        return f"{mood} ({detail})"
    return mood or detail


def event_feelings(feelings: Feelings) -> list[tuple[str, str]]:
    """(label, value) pairs for what an event says about how it feels, in reading order."""
    pairs = []
    mood = mood_phrase(feelings)
    if mood:
        pairs.append(("mood", mood))
    for label, value in (("energy", feelings.energy), ("emotion", feelings.emotion), ("lyrics", feelings.lyrics_language)):
        if value:
            pairs.append((label, value))
    return pairs
