"""A backend for the Dask executor tests that works in any process.

A ScriptedBackendPlugin keeps its answers in the memory of the test process, which worker
processes never see. This backend derives its answer from the audio alone (content hash and duration),
so every process gives the same answer for the same input. Workers import this module by
name (``dask_plugin:plugin``): LocalCluster starts them with the test process's sys.path.
"""

from __future__ import annotations

import os
import threading
from collections import Counter

from runpipe.hookspecs import hookimpl
from runpipe.interfaces import Backend
from runpipe.model import Analysis, AudioFile, Task, TimeRange, Usage

_calls: Counter = Counter()  # process id -> analyze calls, read from workers with client.run
_calls_lock = threading.Lock()


class ToneFailure(Exception):
    pass


class ToneBackend(Backend):
    """Answers from the audio's own content. Inputs named ``bad*`` fail; ``crash*`` kill the worker."""

    name = "tone"

    def analyze(self, audio: AudioFile, task: Task, *, window: TimeRange | None = None) -> Analysis:
        with _calls_lock:
            _calls[os.getpid()] += 1
        if "bad" in audio.source.name:
            raise ToneFailure(f"cannot hear {audio.source.name}")
        if "crash" in audio.source.name and _on_dask_worker():
            os._exit(13)  # as a native library dying (out of memory, segfault) takes its process with it
        digest = audio.content_hash[:12]
        segment = {"speaker": "Speaker 1", "timestamp": "00:00", "content": f"a tone ({digest})", "language": "English",
                   "language_code": "en", "translation": "", "emotion": "neutral"}
        data = {"summary": f"{audio.duration:.2f} s of tone {digest}", "segments": [segment]}
        return Analysis(task=task.name, data=data, backend=self.name, model="tone-1",
                        usage=Usage(prompt_tokens=int((audio.duration or 0) * 32), output_tokens=10, requests=1))


def _on_dask_worker() -> bool:
    from distributed import get_worker

    try:
        get_worker()
    except ValueError:
        return False
    return True


class ToneBackendPlugin:
    @hookimpl
    def runpipe_register_backends(self, register):
        register(ToneBackend)


plugin = ToneBackendPlugin()


def calls() -> dict[int, int]:
    """Analyze calls made in this process, by process id."""
    with _calls_lock:
        return dict(_calls)


def reset_calls() -> None:
    with _calls_lock:
        _calls.clear()
