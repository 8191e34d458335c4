"""Gemini 3.5 Transcribe for the timeline: Google's own word times, speakers and languages.

For a task whose answer has transcript segments, the backend asks two models about the same
audio: the general model for the understanding (summary, translations, emotions: the task's
prompt and schema) and the transcription model for the timeline (``audioTranscriptionConfig``
with word timestamps and diarization, the pipeline's vocabulary and speaker names as custom
vocabulary). :func:`~.transcribe_merge.merge` lays the first onto the second.

The transcription model takes at most 30 minutes of audio a request with word timestamps or
diarization, so longer audio is asked for in equal pieces of at most that. When the key cannot
use the model (404, permission, quota, any failure), the answer keeps the general model's own
times and says so in its notes: an input never fails because of the timeline.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import threading
from typing import Sequence

from google.genai import types

from runpipe.errors import BackendError
from runpipe.model import Analysis, AudioFile, ModelUse, Task, TimeRange, Usage
from runpipe.plugins.retime.align import TimedWord

from .client import GeminiClient
from .media import MediaStager, StagedMedia
from .response import read_reply
from .settings import AUDIO_TOKENS_PER_SECOND, GeminiSettings
from .transcribe_merge import Utterance, merge, wants_timeline

log = logging.getLogger("runpipe.plugins.gemini")

#: Longest audio one request may carry with word timestamps or diarization (the model page).
MAX_TIMED_SECONDS = 1800.0
#: Most custom-vocabulary phrases one request may carry.
MAX_VOCABULARY = 1000
_DURATION = re.compile(r"^\s*(-?\d+(?:\.\d+)?)s\s*$")


def duration_seconds(text: str | None) -> float | None:
    """A protobuf Duration in JSON (``"12.340s"``) as seconds; None when absent or unreadable."""
    match = _DURATION.match(text or "")
    return float(match.group(1)) if match else None


def transcription_config(vocabulary: Sequence[str]) -> types.GenerateContentConfig:
    return types.GenerateContentConfig(
        audio_transcription_config=types.AudioTranscriptionConfig(
            word_timestamp=True, diarization=True, custom_vocabulary=list(vocabulary[:MAX_VOCABULARY]) or None,
        ),
    )


def read_utterances(response: types.GenerateContentResponse, shift: float) -> tuple[Utterance, ...]:
    """The answer's utterances (one per part that carries a transcription), ``shift`` seconds later."""
    candidate = response.candidates[0] if response.candidates else None
    parts = (candidate.content.parts if candidate and candidate.content else None) or []
    utterances = []
    for part in parts:
        heard = part.audio_transcription
        if heard is None:
            continue
        words = []
        for info in heard.words or ():
            start, end = duration_seconds(info.start_offset), duration_seconds(info.end_offset)
            if info.word and start is not None:
                words.append(TimedWord(info.word, start + shift, max(start, end if end is not None else start) + shift))
        start = duration_seconds(heard.start_offset)
        end = duration_seconds(heard.end_offset)
        start = start + shift if start is not None else (words[0].start if words else None)
        end = end + shift if end is not None else (words[-1].end if words else start)
        text = (heard.text or part.text or "").strip()
        if start is None or not text:
            continue
        utterances.append(Utterance(text, start, max(end, start), heard.speaker_label, heard.language_code, tuple(words)))
    return tuple(utterances)


def pieces(span: TimeRange) -> list[TimeRange]:
    """``span`` in equal consecutive pieces of at most :data:`MAX_TIMED_SECONDS`."""
    length = span.end - span.start
    count = max(1, math.ceil(length / MAX_TIMED_SECONDS))
    step = length / count
    return [TimeRange(span.start + i * step, span.start + (i + 1) * step if i + 1 < count else span.end) for i in range(count)]


class TranscribedTimeline:
    """The timeline half of a Gemini backend. Remembers, for the backend's life, a model the key
    cannot use (404, 403, 400), so the other windows of a run do not ask again."""

    def __init__(self, settings: GeminiSettings):
        self.settings = settings
        self._refused: str | None = None
        self._lock = threading.Lock()

    def applies(self, task: Task) -> bool:
        return self.settings.transcribe_timeline and wants_timeline(task.schema)

    @staticmethod
    def requests(seconds: float) -> int:
        """Requests the timeline of ``seconds`` of audio takes."""
        return len(pieces(TimeRange(0.0, seconds))) if seconds > 0 else 1

    def lay(self, analysis: Analysis, *, client: GeminiClient, stager: MediaStager, audio: AudioFile, media: StagedMedia,
            window: TimeRange | None, task: Task, what: str) -> Analysis:
        """``analysis`` (the general model's) with its segments on the transcript's timeline; or,
        when the transcript cannot be had, as it is with a note saying why."""
        model = self.settings.transcribe_model
        span = window or TimeRange(0.0, audio.duration)
        with self._lock:
            reason = self._refused
        if reason is None:
            reason = _cannot_transcribe(audio, media, span)
        if reason is None:
            try:
                utterances, usage = self._listen(client, stager, audio, media, span, task, what)
            except BackendError as exc:
                reason = str(exc)
                if not exc.retryable:
                    with self._lock:
                        self._refused = reason
            else:
                if utterances or not analysis.data.get("segments"):
                    data = merge(analysis.data, utterances, task.schema, span.end - span.start)
                    return dataclasses.replace(
                        analysis,
                        data=data,
                        usage=analysis.usage + usage,
                        models=(ModelUse("timeline", model, usage), ModelUse("understanding", analysis.model, analysis.usage)),
                        notes=analysis.notes + (f"segment times, words, speakers and languages from {model}; the rest from {analysis.model}",),
                    )
                reason = "it heard no speech where the general model transcribed some"
        log.warning("%s: timeline from %s itself, not %s: %s", what, analysis.model, model, reason)
        return dataclasses.replace(
            analysis, notes=analysis.notes + (f"segment times from {analysis.model} itself, not {model}: {reason}",)
        )

    def _listen(self, client: GeminiClient, stager: MediaStager, audio: AudioFile, media: StagedMedia, span: TimeRange,
                task: Task, what: str) -> tuple[tuple[Utterance, ...], Usage]:
        model = self.settings.transcribe_model
        config = transcription_config(task.vocabulary)
        utterances: list[Utterance] = []
        usage = Usage()
        split = pieces(span) if span.end - span.start > MAX_TIMED_SECONDS else None
        for piece in split or [span]:
            # the general request's media when it fits, else each piece cut (or uploaded) on its own
            staged = media if split is None else stager.stage(audio, piece, other_bytes=0, inline_limit=self.settings.inline_limit_bytes)
            contents = [types.Content(role="user", parts=[staged.part])]
            response, _ = client.call(
                f"transcribing {what}" + (f" ({piece})" if split else ""),
                lambda: client.sdk.models.generate_content(model=model, contents=contents, config=config),
                model=model, tokens=int((piece.end - piece.start) * AUDIO_TOKENS_PER_SECOND),
            )
            usage += read_reply(response).usage
            utterances += read_utterances(response, staged.offset - media.offset)
        return tuple(utterances), usage


def _cannot_transcribe(audio: AudioFile, media: StagedMedia, span: TimeRange) -> str | None:
    if media.range_in_prompt is not None:
        return "a window of a URL cannot be cut out for it"
    if span.end is None:
        return "the length of the media is unknown"
    if audio.path is None and span.end - span.start > MAX_TIMED_SECONDS:
        return f"a URL cannot be cut into the pieces of at most {MAX_TIMED_SECONDS / 60:.0f} minutes it takes"
    return None
