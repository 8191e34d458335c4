"""Helpers for testing runpipe plugins (and runpipe itself).

* :class:`ScriptedBackendPlugin` registers a :class:`ScriptedBackend` that answers tasks from the
  plugin's own queue of prepared answers, so a test can run a whole pipeline without a model.
* :func:`make_engine` builds an engine with only the plugins you name (no entry points) and no
  default post-processing unless asked; :func:`make_document` builds a Document to render.
* :mod:`runpipe.testing.contracts`: :class:`~runpipe.testing.contracts.ExporterContract` and
  :class:`~runpipe.testing.contracts.BackendContract`, test classes a plugin's suite subclasses.
* :mod:`runpipe.testing.fixtures` (``pytest_plugins = ["runpipe.testing.fixtures"]``): a run
  store and caches of its own for every test, and no API keys from the environment.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from runpipe.answer import parse_fields
from runpipe.hookspecs import hookimpl
from runpipe.interfaces import Backend, BackendLimits
from runpipe.options import option
from runpipe.model import Analysis, AudioFile, Document, MediaItem, Segment, Speaker, Task, TimeRange, Usage


class Script:
    """What a :class:`ScriptedBackend` answers (``answers``, taken in order) and what it was
    asked (``calls``: ``(audio, task, window)``)."""

    def __init__(self, answers: Iterable[Mapping[str, Any] | BaseException] = ()):
        self.answers: deque = deque(answers)
        self.calls: list[tuple[AudioFile, Task, TimeRange | None]] = []
        self.lock = threading.Lock()


@dataclass(frozen=True)
class ScriptedOptions:
    model: str = option("scripted-1", "the model name its answers report")


class ScriptedBackend(Backend):
    """A backend that returns queued answers (dicts matching the task's schema) in order.

    An instance made directly has a script of its own; the backends an engine makes from a
    :class:`ScriptedBackendPlugin` share that plugin's script, so two engines never share
    answers::

        plugin = ScriptedBackendPlugin(answer_one, answer_two)
        with make_engine([plugin]) as engine: ...
        audio, task, window = plugin.calls[0]

    An exception instance in the queue is raised instead of answered. With an empty queue it
    answers an empty transcript.
    """

    name = "scripted"
    limits = BackendLimits(max_audio_seconds=None)
    Options = ScriptedOptions
    settings: ScriptedOptions
    #: The script every instance of this class shares (set by :class:`ScriptedBackendPlugin`);
    #: None: each instance gets its own.
    shared_script: Script | None = None

    def __init__(self, options: Mapping[str, Any] | None = None):
        super().__init__(options)
        self.script = self.shared_script or Script()

    def analyze(self, audio: AudioFile, task: Task, *, window: TimeRange | None = None) -> Analysis:
        with self.script.lock:
            self.script.calls.append((audio, task, window))
            answer = self.script.answers.popleft() if self.script.answers else {"summary": "", "segments": []}
        if isinstance(answer, BaseException):
            raise answer
        return Analysis(task=task.name, data=dict(answer), backend=self.name, model=self.settings.model,
                        usage=Usage(prompt_tokens=int((audio.duration or 0) * 32), output_tokens=10, requests=1))


class ScriptedBackendPlugin:
    """Registers a :class:`ScriptedBackend` with a script of this plugin's own; pass an instance
    to ``Engine(plugins=[...])``. ``answers`` (and :meth:`queue`) fill the script, ``calls`` is
    what was asked; ``name`` registers the backend under another name.
    """

    def __init__(self, *answers: Mapping[str, Any] | BaseException, name: str = "scripted"):
        self.script = Script(answers)
        self.backend: type[ScriptedBackend] = type("ScriptedBackend", (ScriptedBackend,), {"name": name, "shared_script": self.script})

    @property
    def answers(self) -> deque:
        return self.script.answers

    @property
    def calls(self) -> list[tuple[AudioFile, Task, TimeRange | None]]:
        return self.script.calls

    def queue(self, *answers: Mapping[str, Any] | BaseException) -> None:
        self.script.answers.extend(answers)

    @hookimpl
    def runpipe_register_backends(self, register):
        register(self.backend)


def make_engine(plugins: Iterable[object] = (), *, postprocess: bool = False, **kwargs: Any):
    """An engine with the built-ins plus ``plugins``, no entry-point plugins, and no default
    post-processing (``postprocess=True`` turns on the steps that are on by default; a
    pipeline's own ``stages.postprocess`` always runs). Keyword arguments go to ``Engine``."""
    from runpipe.engine import Engine

    return Engine(plugins=list(plugins), load_entrypoints=False, default_postprocess=postprocess, **kwargs)


def make_document(
    segments: Iterable[Segment] = (),
    *,
    fields: Mapping[str, Any] | None = None,
    name: str = "talk.wav",
    duration: float | None = None,
    **changes: Any,
) -> Document:
    """A :class:`Document` for an exporter or post-processor test, without audio or a run.

    ``segments`` may be :class:`Segment` values or ``(start, end, content)`` / ``(start, end,
    content, speaker)`` tuples; ``changes`` set any other Document field (``speakers``, ``notes``...).
    """
    typed = tuple(s if isinstance(s, Segment) else Segment(s[0], s[1], s[2], *s[3:]) for s in segments)
    end = duration if duration is not None else max((s.end or s.start for s in typed), default=0.0)
    item = MediaItem(uri=f"/media/{name}", kind="file", name=name)
    audio = AudioFile(source=item, path=None, mime_type="audio/ogg", duration=end, content_hash="0" * 64)
    speakers = tuple(Speaker(label) for label in dict.fromkeys(s.speaker for s in typed if s.speaker))
    values = dict(source=item, audio=audio, task="transcript", schema_name="transcript", backend="scripted",
                  model="scripted-1", answer=parse_fields(fields if fields is not None else {"summary": ""}), segments=typed,
                  speakers=speakers)
    return Document(**{**values, **changes})


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
