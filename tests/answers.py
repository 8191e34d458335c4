"""Prepared backend answers for tests."""

TRANSCRIPT = {
    "summary": "Two hosts talk about turning recordings into notes.",
    "segments": [
        {"speaker": "Speaker 1", "timestamp": "00:00", "content": "Welcome back to the show.",
         "language": "English", "language_code": "en", "translation": "", "emotion": "happy"},
        {"speaker": "Speaker 2", "timestamp": "00:07", "content": "Thanks for having me.",
         "language": "English", "language_code": "en", "translation": "", "emotion": "neutral"},
        {"speaker": "Speaker 2", "timestamp": "00:21", "content": "Und wenn jemand Deutsch spricht.",
         "language": "German", "language_code": "de", "translation": "And if someone speaks German.", "emotion": "neutral"},
    ],
}
