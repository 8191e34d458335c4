"""Helpers for testing runpipe plugins (and runpipe itself).

* :class:`ScriptedBackend` answers tasks from a queue of prepared answers, so a test can run a
  whole pipeline without a model.
* :func:`make_engine` builds an engine with only the plugins you name (no entry points).
* :mod:`runpipe.testing.gemini_server` is a local server speaking Gemini's REST protocol, for
  testing against the real ``google-genai`` SDK.
* :func:`tone_wav` writes a small WAV file; :func:`write_wav` writes samples you made.
"""

from __future__ import annotations

import math
import struct
import threading
import wave
from collections import deque
from pathlib import Path
from typing import Any, Iterable, Mapping

from runpipe.hookspecs import hookimpl
from runpipe.interfaces import Backend, BackendLimits
from runpipe.model import Analysis, AudioFile, Task, TimeRange, Usage


class ScriptedBackend(Backend):
    """A backend that returns queued answers (dicts matching the task's schema) in order.

    Queue answers with ``ScriptedBackend.queue(answer, ...)``; an exception instance in the
    queue is raised instead. With an empty queue it answers with an empty transcript.
    Calls are recorded in ``ScriptedBackend.calls`` as (audio, task, window).
    """

    name = "scripted"
    limits = BackendLimits(max_audio_seconds=None)
    option_names = ("model",)
    answers: deque = deque()
    calls: list[tuple[AudioFile, Task, TimeRange | None]] = []
    _lock = threading.Lock()

    @classmethod
    def queue(cls, *answers: Mapping[str, Any] | BaseException) -> None:
        cls.answers.extend(answers)

    @classmethod
    def reset(cls) -> None:
        cls.answers.clear()
        cls.calls.clear()

    def analyze(self, audio: AudioFile, task: Task, *, window: TimeRange | None = None) -> Analysis:
        with self._lock:
            self.calls.append((audio, task, window))
            answer = self.answers.popleft() if self.answers else {"summary": "", "segments": []}
        if isinstance(answer, BaseException):
            raise answer
        return Analysis(task=task.name, data=dict(answer), backend=self.name, model=self.options.get("model", "scripted-1"),
                        usage=Usage(prompt_tokens=int((audio.duration or 0) * 32), output_tokens=10, requests=1))


class ScriptedBackendPlugin:
    """Registers :class:`ScriptedBackend`; pass an instance to ``Engine(plugins=[...])``."""

    @hookimpl
    def runpipe_register_backends(self, register):
        register(ScriptedBackend)


def make_engine(plugins: Iterable[object] = (), **kwargs: Any):
    """An engine with the built-ins plus ``plugins`` and no entry-point plugins."""
    from runpipe.engine import Engine

    return Engine(plugins=list(plugins), load_entrypoints=False, **kwargs)


def write_wav(path: Path, samples: Any, rate: int = 16000) -> Path:
    """Write float samples in [-1, 1] (a numpy array) as 16-bit mono PCM WAV."""
    import numpy as np  # the offline extra's dependency; only tests that build audio need it

    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return path


def tone_wav(path: Path, seconds: float = 1.0, rate: int = 16000, freq: float = 440.0, channels: int = 1) -> Path:
    """Write a sine tone as 16-bit PCM WAV (a small, valid audio file for tests)."""
    frames = bytearray()
    for n in range(int(seconds * rate)):
        sample = int(8000 * math.sin(2 * math.pi * freq * n / rate))
        frames += struct.pack("<h", sample) * channels
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(frames))
    return path
