"""Shared fixtures. Every test gets its own runpipe user folder (run store, caches), from
runpipe.testing.fixtures."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import ffmpeg as ffmpeg_python
import pytest

from runpipe import ffmpeg
from runpipe.testing import tone_wav

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "podcast_sample.ogg"


#: The fixtures plugin authors use: a user folder (run store, caches) per test, no API keys.
pytest_plugins = ["runpipe.testing.fixtures"]

#: Whisper calls made in this process (faster-whisper models built, transcriptions started).
_whisper_calls = [0]


def pytest_configure(config):
    """Count Whisper use, so a test that runs it without the ``local_models`` marker fails:
    its results move with the recogniser's version, and ``-m "not local_models"`` must skip it."""
    try:
        from faster_whisper import WhisperModel
    except ImportError:  # without the offline extra nothing can run Whisper
        return
    for name in ("__init__", "transcribe"):
        original = getattr(WhisperModel, name)

        def counted(*args, _original=original, **kwargs):
            _whisper_calls[0] += 1
            return _original(*args, **kwargs)

        setattr(WhisperModel, name, counted)


@pytest.fixture(autouse=True)
def whisper_only_where_marked(request):
    calls_before = _whisper_calls[0]
    yield
    # counted in this process only: a runpipe subprocess is checked by hand (its model folder
    # also appears when the backend only checks it can run)
    if _whisper_calls[0] > calls_before and request.node.get_closest_marker("local_models") is None:
        pytest.fail("this test runs Whisper: mark it @pytest.mark.local_models")


@pytest.fixture
def decoding_threads(monkeypatch) -> set[str]:
    """The names of the threads faster-whisper decodes windows in (``generate_with_fallback``)
    while the test runs."""
    import threading

    from faster_whisper.transcribe import WhisperModel

    names: set[str] = set()
    generate = WhisperModel.generate_with_fallback

    def noted(self, *args):
        names.add(threading.current_thread().name)
        return generate(self, *args)

    monkeypatch.setattr(WhisperModel, "generate_with_fallback", noted)
    return names


def require(condition: bool, reason: str) -> None:
    """Skip when an optional tool is missing - but never in CI, where everything must run."""
    if not condition:
        if os.environ.get("CI"):
            pytest.fail(f"required in CI: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    """The same 3 s tone in every container the normalize stage must accept, plus a video."""
    folder = tmp_path_factory.mktemp("media")
    source = tone_wav(folder / "tone.wav", seconds=3.0, rate=44100, channels=2)
    for name, encoder in {
        "tone.mp3": "libmp3lame",
        "tone.flac": "flac",
        "tone.ogg": "libvorbis",
        "tone.aiff": "pcm_s16be",
        "tone.m4a": "aac",
        "tone.webm": "libopus",
        "tone.opus": "libopus",
    }.items():
        ffmpeg.run(ffmpeg_python.input(str(source)).output(str(folder / name), **{"c:a": encoder}))
    picture = ffmpeg_python.input("testsrc=size=160x120:rate=10", f="lavfi")
    clip = ffmpeg_python.output(picture, ffmpeg_python.input(str(source)), str(folder / "clip.mp4"),
                                t=3, shortest=None, **{"c:v": "mpeg4", "c:a": "aac"})
    ffmpeg.run(clip)
    return folder


def sample_copy(folder: Path, name: str = "podcast_sample.ogg") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(SAMPLE, folder / name))


def wait_for(condition, what: str, timeout: float = 60.0) -> None:
    """Poll ``condition`` until it holds (the tests that stop a runpipe process mid-way)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
