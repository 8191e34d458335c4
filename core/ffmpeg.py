"""The one place runpipe runs ffmpeg.

The binary is ``RUNPIPE_FFMPEG`` if set, else ``ffmpeg`` on PATH, else the one the
``imageio-ffmpeg`` package ships, so a fresh machine needs no system package. Probing uses
``ffprobe`` when it sits beside that ffmpeg and otherwise parses ``ffmpeg -i``'s report, so it
works without a system ffprobe. Commands are argv lists (never a shell), logged at debug level,
and outputs are written to a temporary name and renamed into place. Callers describe the work as an
ffmpeg-python graph; :func:`run` compiles it against the chosen binary and executes it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import uuid
from functools import lru_cache
from pathlib import Path

import ffmpeg as ffmpeg_python

from runpipe.errors import FFmpegError, MediaError
from runpipe.model import AudioInfo

log = logging.getLogger("runpipe.ffmpeg")


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    """Run ffmpeg or ffprobe. They share the terminal's process group, so Ctrl-C stops them too;
    a child stopped that way raises KeyboardInterrupt here (in whichever thread ran it), rather
    than its empty or cut output being read as a fault of the input."""
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    if proc.returncode == -signal.SIGINT or (proc.returncode == 255 and "received signal 2" in proc.stderr):
        raise KeyboardInterrupt
    return proc


@lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    explicit = os.environ.get("RUNPIPE_FFMPEG")
    if explicit:
        return explicit
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg
    except ImportError:  # pragma: no cover - imageio-ffmpeg is a dependency
        raise MediaError("ffmpeg not found: install it (apt install ffmpeg) or `pip install imageio-ffmpeg`") from None
    return imageio_ffmpeg.get_ffmpeg_exe()


@lru_cache(maxsize=1)
def ffprobe_exe() -> str | None:
    """ffprobe beside the chosen ffmpeg, if there is one (imageio-ffmpeg ships none)."""
    candidate = Path(ffmpeg_exe()).with_name("ffprobe")
    return str(candidate) if candidate.exists() else None


@lru_cache(maxsize=1)
def encoders() -> frozenset[str]:
    out = _run([ffmpeg_exe(), "-hide_banner", "-encoders"]).stdout
    return frozenset(m.group(1) for m in re.finditer(r"^\s*A\S*\s+(\S+)", out, re.MULTILINE))


def version() -> str:
    out = _run([ffmpeg_exe(), "-version"]).stdout
    return out.splitlines()[0] if out else "unknown"


#: Why ffmpeg failed, in runpipe's words: its last line is often only "Error opening output
#: files", and each build words the cause differently (Debian's 5.1 says "Decoder (codec none)
#: not found for input stream #0:0", imageio-ffmpeg's 9.0 "Decoding requested, but no decoder
#: found for: none"), so the message a user sees must not depend on which ffmpeg ran.
_CAUSES = (
    (re.compile(r"no decoder found|decoder .*not found|unknown codec|could not find codec", re.IGNORECASE),
     "no decoder for its codec"),
    (re.compile(r"invalid data found", re.IGNORECASE), "invalid data found when processing input"),
)


def _why(stderr: str) -> str:
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    for pattern, meaning in _CAUSES:
        if any(pattern.search(line) for line in lines):
            return meaning
    return lines[-1] if lines else "no error output"


def run(graph: ffmpeg_python.nodes.OutputStream, output: Path | None = None, *, log_level: str = "error") -> str:
    """Run an ffmpeg-python ``graph``, compiled against the chosen binary; when ``output`` is
    given it is the graph's output file, which appears only if ffmpeg succeeded. Returns stderr
    (``log_level`` "info" for what filters and the progress line report)."""
    compiled = graph.compile(cmd=ffmpeg_exe())
    # the runner's own global options: never wait for a key, no banner, the temp name may exist
    cmd = [compiled[0], "-nostdin", "-hide_banner", "-y", "-v", log_level, *compiled[1:]]
    tmp: Path | None = None
    if output is not None:
        # ffmpeg picks the muxer from the suffix, so keep it; unique per call, because two
        # threads may be producing the same cached file at once
        tmp = output.with_name(f"{output.stem}.part-{uuid.uuid4().hex[:8]}{output.suffix}")
        cmd[len(cmd) - 1 - cmd[::-1].index(str(output))] = str(tmp)
    log.debug("ffmpeg: %s", shlex.join(cmd))
    try:
        proc = _run(cmd)
    except KeyboardInterrupt:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise
    if proc.returncode != 0:
        log.debug("ffmpeg failed (exit %s): %s", proc.returncode, proc.stderr.strip())
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise FFmpegError(_why(proc.stderr), cmd)
    if tmp is not None:
        os.replace(tmp, output)
    return proc.stderr


_DURATION = re.compile(r"Duration:\s*(\d+):(\d+):(\d+(?:\.\d+)?)")
_AUDIO_STREAM = re.compile(r"Stream #\S+.*?: Audio: ([^,\s]+)[^,]*(?:,\s*(\d+) Hz)?(?:,\s*([^,]+))?")
_INPUT = re.compile(r"Input #0, ([^,]+(?:,[^,]+)*?), from")
_TIME = re.compile(r"time=(\d+):(\d+):(\d+(?:\.\d+)?)")
_CHANNELS = {"mono": 1, "stereo": 2, "2.1": 3, "quad": 4, "5.0": 5, "5.1": 6, "6.1": 7, "7.1": 8}


def probe(path: Path) -> AudioInfo:
    """Duration, codec, sample rate and channels of the first audio stream.

    Raises :class:`MediaError` when the file is not media or has no audio stream.
    """
    if ffprobe_exe():
        return _probe_ffprobe(path)
    return _probe_ffmpeg(path)


def _probe_ffprobe(path: Path) -> AudioInfo:
    cmd = [ffprobe_exe(), "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)]
    proc = _run(cmd)
    if proc.returncode != 0:
        raise MediaError(f"not readable as audio or video ({_why(proc.stderr)})")
    data = json.loads(proc.stdout or "{}")
    streams = data.get("streams", [])
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    if audio is None:
        raise MediaError("contains no audio stream")
    duration = audio.get("duration") or data.get("format", {}).get("duration")
    return AudioInfo(
        duration=float(duration) if duration not in (None, "N/A") else None,
        codec=audio.get("codec_name"),
        sample_rate=int(audio["sample_rate"]) if audio.get("sample_rate") else None,
        channels=audio.get("channels"),
        container=data.get("format", {}).get("format_name"),
        has_video=any(s.get("codec_type") == "video" and s.get("disposition", {}).get("attached_pic") != 1 for s in streams),
    )


def _probe_ffmpeg(path: Path) -> AudioInfo:
    cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-i", str(path)]
    stderr = _run(cmd).stderr
    stream = _AUDIO_STREAM.search(stderr)
    if "Input #0" not in stderr:
        raise MediaError(f"not readable as audio or video ({_why(stderr)})")
    if stream is None:
        raise MediaError("contains no audio stream")
    duration_match = _DURATION.search(stderr)
    duration = None
    if duration_match:
        h, m, s = duration_match.groups()
        duration = int(h) * 3600 + int(m) * 60 + float(s)
    container = _INPUT.search(stderr)
    channels = stream.group(3).strip() if stream.group(3) else None
    video = re.search(r"Stream #\S+.*?: Video: (\S+)", stderr)
    return AudioInfo(
        duration=duration,
        codec=stream.group(1),
        sample_rate=int(stream.group(2)) if stream.group(2) else None,
        channels=_CHANNELS.get(channels) if channels else None,
        container=container.group(1) if container else None,
        # cover art in an MP3 shows as a video stream flagged "(attached pic)"
        has_video=bool(video) and "attached pic" not in stderr[video.start(): stderr.find("\n", video.start())],
    )


def decoded_duration(path: Path) -> float:
    """Decode the whole audio stream and return how long it really is (seconds).

    Used when the container does not state a duration, and to catch files whose header
    promises audio that is not there (truncated uploads, corrupt frames).
    """
    stderr = run(ffmpeg_python.input(str(path)).output("-", f="null", vn=None), log_level="info")
    times = _TIME.findall(stderr)
    if not times:
        return 0.0
    h, m, s = times[-1]
    return int(h) * 3600 + int(m) * 60 + float(s)
