"""FakeGemini's transcription model: ``gemini-3.5-transcribe`` as Google documents it.

:class:`~runpipe.testing.gemini_server.FakeGemini` hands every ``generateContent`` request to
:meth:`Transcriptions.claims` first; requests for a transcription model are answered here::

    server.transcribe.script(Transcript.of(Utterance.spoken("spk_1", "en-US", [("Hello", 0.4, 0.7), ...])))

What it checks and answers, from Google's "Audio transcription" guide, the model page and
google-genai 3.6.1's types (``AudioTranscriptionConfig``, ``Part.audio_transcription``,
``Transcription``, ``WordInfo``), not guessed:

* ``generationConfig.audioTranscriptionConfig`` takes ``languageCodes``, ``customVocabulary``
  (at most 1,000 phrases), ``wordTimestamp``, ``diarization``, ``mode`` (``VERBATIM`` or
  ``SMART``; timestamps and diarization are incompatible with ``SMART``), ``sourceText`` and the
  deprecated ``languageAuto``, ``languageHints``, ``adaptationPhrases``. The config is optional:
  the guide's first example sends none and gets a plain transcript.
* Audio up to one hour a request, 30 minutes with word timestamps or diarization: longer is 400.
* The answer: one part per utterance (each speaker turn its own part), each with ``text`` and
  ``audioTranscription`` {``text``, ``languageCode``, ``startOffset``, ``endOffset``, plus
  ``speakerLabel`` ("spk_1", ...) only with diarization and ``words`` [{``word``,
  ``startOffset``, ``endOffset``}] only with word timestamps}. Offsets are protobuf Duration
  strings ("12.340s").
* A key without access to the model gets 404 NOT_FOUND (``access=False``).

Choices where the documents say nothing, made strict so runpipe cannot come to rely on them: an
``audioTranscriptionConfig`` sent to any other model is refused (400), and so is a JSON response
schema for the transcription model (its page lists text and word annotations as its only output).
"""

from __future__ import annotations

import collections
import threading
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence, Union

from runpipe.testing import gemini_server as server
from runpipe.testing.gemini_server import ModelRequest

#: The transcription models FakeGemini serves (the live model speaks another protocol).
TRANSCRIBE_MODELS = frozenset({"gemini-3.5-transcribe"})
MAX_SECONDS = 3600.0
#: With word timestamps or diarization a request may carry at most this much audio.
MAX_SECONDS_WITH_TIMING = 1800.0
MAX_VOCABULARY = 1000
_MODES = ("MODE_UNSPECIFIED", "VERBATIM", "SMART")
_CONFIG = {
    "languageCodes": server.ANY, "languageAuto": server.ANY, "languageHints": server.ANY,
    "customVocabulary": server.ANY, "adaptationPhrases": server.ANY, "wordTimestamp": server.ANY,
    "diarization": server.ANY, "mode": server.ANY, "sourceText": server.ANY,
}


def duration_string(seconds: float) -> str:
    """Seconds as a protobuf Duration in JSON: ``"12.340s"``."""
    return f"{seconds:.3f}s"


@dataclass(frozen=True)
class SpokenWord:
    text: str
    start: float
    end: float


@dataclass(frozen=True)
class Utterance:
    """One speaker turn as the model hears it."""

    speaker: str  # "spk_1", ...
    language_code: str  # BCP-47, e.g. "en-US"
    words: tuple[SpokenWord, ...]

    @classmethod
    def spoken(cls, speaker: str, language_code: str, words: Iterable[tuple[str, float, float]]) -> "Utterance":
        return cls(speaker, language_code, tuple(SpokenWord(*w) for w in words))

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)


@dataclass(frozen=True)
class Transcript:
    """What the model hears in the audio of one request; ``delay`` waits before answering."""

    utterances: tuple[Utterance, ...]
    delay: float = 0.0

    @classmethod
    def of(cls, *utterances: Utterance) -> "Transcript":
        return cls(tuple(utterances))


Responder = Callable[[ModelRequest], Union[Transcript, "server.HttpError"]]


class Transcriptions:
    """The transcription model of one FakeGemini: its scripts, and whether the key may use it."""

    def __init__(self) -> None:
        #: False: the key has no access to the transcription model (404, as Google answers).
        self.access = True
        #: Answers requests the queue has nothing for (a Transcript, or a function of the request).
        self.default: Transcript | Responder | None = None
        self._queue: collections.deque = collections.deque()
        self._lock = threading.Lock()

    def script(self, *responses: Transcript | server.HttpError | server.Disconnect) -> "Transcriptions":
        """Queue answers for transcription requests, used in order."""
        for response in responses:
            if not isinstance(response, (Transcript, server.HttpError, server.Disconnect)):
                raise TypeError(f"cannot script {type(response).__name__} for the transcription model")
        with self._lock:
            self._queue.extend(responses)
        return self

    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    @staticmethod
    def endpoint(endpoint: str, model: str) -> str:
        """What FakeGemini records a request under: ``transcribe`` for generateContent on a
        transcription model, so the general model's requests can be counted apart."""
        return "transcribe" if endpoint == "generateContent" and model.removeprefix("models/") in TRANSCRIBE_MODELS else endpoint

    def claims(self, model: str, request: dict, media_seconds: Sequence[float | None]) -> bool:
        """Whether this request is for a transcription model (checked); refuses a transcription
        config sent to any other model."""
        config = (request.get("generationConfig") or {}).get("audioTranscriptionConfig")
        if model.removeprefix("models/") not in TRANSCRIBE_MODELS:
            if config is not None:
                raise server.RequestRejected(400, f"audio_transcription_config is not supported by models/{model}; use a transcription model such as gemini-3.5-transcribe.")
            return False
        if not self.access:
            raise server.RequestRejected(404, f"models/{model} is not found for API version v1beta, or is not supported for generateContent.")
        self._check(request, server._canonical(config, _CONFIG, "generation_config.audio_transcription_config") or {}, media_seconds)
        return True

    @staticmethod
    def _check(request: dict, config: dict, media_seconds: Sequence[float | None]) -> None:
        generation = request.get("generationConfig") or {}
        if generation.get("responseSchema") or generation.get("responseJsonSchema") or generation.get("responseMimeType") == "application/json":
            raise server.RequestRejected(400, "Structured output (response_mime_type application/json, response schemas) is not supported by gemini-3.5-transcribe.")
        if not media_seconds:
            raise server.RequestRejected(400, "* GenerateContentRequest.contents: gemini-3.5-transcribe needs audio to transcribe.\n")
        mode = config.get("mode") or "MODE_UNSPECIFIED"
        if mode not in _MODES:
            raise server.RequestRejected(400, f'Invalid value at \'generation_config.audio_transcription_config.mode\' (type.googleapis.com/google.ai.generativelanguage.v1beta.AudioTranscriptionConfig.Mode), "{mode}"')
        timed = bool(config.get("wordTimestamp")) or bool(config.get("diarization"))
        if mode == "SMART" and timed:
            raise server.RequestRejected(400, "Word timestamps and diarization are incompatible with transcription mode SMART.")
        vocabulary = config.get("customVocabulary") or []
        if not isinstance(vocabulary, list) or not all(isinstance(v, str) for v in vocabulary):
            raise server.RequestRejected(400, "Invalid value at 'generation_config.audio_transcription_config.custom_vocabulary': expected a list of strings.")
        if len(vocabulary) > MAX_VOCABULARY:
            raise server.RequestRejected(400, f"custom_vocabulary has {len(vocabulary)} phrases; at most {MAX_VOCABULARY} are allowed.")
        seconds = sum(s for s in media_seconds if s)
        limit = MAX_SECONDS_WITH_TIMING if timed else MAX_SECONDS
        if seconds > limit:
            because = " with word timestamps or speaker diarization" if timed else ""
            raise server.RequestRejected(400, f"The audio is {seconds:.0f} seconds long; gemini-3.5-transcribe takes at most {limit:.0f} seconds a request{because}.")

    def answer(self, model: str, request: ModelRequest, handler: Any) -> dict:
        """The generateContent answer to a claimed request."""
        with self._lock:
            response = self._queue.popleft() if self._queue else None
        if response is None and self.default is not None:
            response = self.default if isinstance(self.default, Transcript) else self.default(request)
        if response is None:
            raise server.RequestRejected(501, "FakeGemini has no transcript scripted; queue one with server.transcribe.script(...).")
        server._wait_or_fail(response, handler)
        config = (request.body.get("generationConfig") or {}).get("audioTranscriptionConfig") or {}
        config = server._canonical(config, _CONFIG, "")
        parts = [_part(u, words=bool(config.get("wordTimestamp")), speakers=bool(config.get("diarization"))) for u in response.utterances]
        audio = sum(round(s * server.AUDIO_TOKENS_PER_SECOND) for s in request.audio_seconds if s)
        output = sum(server._text_tokens(u.text) for u in response.utterances)
        return {
            "candidates": [{"content": {"parts": parts or [{"text": ""}], "role": "model"}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {
                "promptTokenCount": audio,
                "promptTokensDetails": [{"modality": "AUDIO", "tokenCount": audio}],
                "candidatesTokenCount": output,
                "totalTokenCount": audio + output,
            },
            "modelVersion": model.removeprefix("models/"),
            "responseId": uuid.uuid4().hex[:22],
        }


def _part(utterance: Utterance, *, words: bool, speakers: bool) -> dict:
    transcription: dict[str, Any] = {
        "text": utterance.text,
        "languageCode": utterance.language_code,
        "startOffset": duration_string(utterance.words[0].start if utterance.words else 0.0),
        "endOffset": duration_string(utterance.words[-1].end if utterance.words else 0.0),
    }
    if speakers:
        transcription["speakerLabel"] = utterance.speaker
    if words:
        transcription["words"] = [
            {"word": w.text, "startOffset": duration_string(w.start), "endOffset": duration_string(w.end)} for w in utterance.words
        ]
    return {"text": utterance.text, "audioTranscription": transcription}


def general_answer(transcript: Transcript, *, drift: float, summary: str = "",
                   fields: Callable[[int, Utterance], Mapping[str, Any]] = lambda index, utterance: {}) -> dict:
    """What a general model answers for the transcript task about the same speech: one segment
    per utterance, its MM:SS timestamp ``drift`` seconds late (as the general models' drift),
    plus ``fields(index, utterance)`` (translation, emotion, ...)."""
    from runpipe.timecode import format_clock

    return {
        "summary": summary,
        "segments": [
            {
                "speaker": f"Speaker {u.speaker.rsplit('_', 1)[-1]}",
                "timestamp": format_clock(max(0.0, u.words[0].start + drift)),
                "content": u.text,
                "language_code": u.language_code.split("-")[0],
                **fields(i, u),
            }
            for i, u in enumerate(transcript.utterances)
        ],
    }
