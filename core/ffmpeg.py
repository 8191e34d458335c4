"""The one place runpipe runs ffmpeg.

The binary is ``RUNPIPE_FFMPEG`` if set, else ``ffmpeg`` on PATH, else the one the
``imageio-ffmpeg`` package ships, so a fresh machine needs no system package. Callers describe the
work as an ffmpeg-python graph; :func:`run` compiles it against the chosen binary and executes the
argv list (never a shell), logged at debug level, with an output written to a temporary name and
renamed into place. Probing is such a graph too: it reads ffmpeg's own report on the input, so it
works alike with every build and needs no ``ffprobe`` (imageio-ffmpeg ships none).
"""

from __future__ import annotations

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
    """Run ffmpeg. It shares the terminal's process group, so Ctrl-C stops it too; a child
    stopped that way raises KeyboardInterrupt here (in whichever thread ran it), rather than its
    empty or cut output being read as a fault of the input."""
    log.debug("ffmpeg: %s", shlex.join(cmd))
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


def _query(option: str) -> str:
    """What ``ffmpeg -hide_banner <option>`` prints about the binary itself (``-encoders``,
    ``-version``). The one argv runpipe writes by hand: an ffmpeg-python graph always runs from
    an input to an output, and these queries have neither."""
    return _run([ffmpeg_exe(), "-hide_banner", option]).stdout


@lru_cache(maxsize=1)
def encoders() -> frozenset[str]:
    return frozenset(m.group(1) for m in re.finditer(r"^\s*A\S*\s+(\S+)", _query("-encoders"), re.MULTILINE))


def version() -> str:
    out = _query("-version")
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


def _command(graph: ffmpeg_python.nodes.OutputStream, log_level: str) -> list[str]:
    """``graph`` compiled against the chosen binary, with the runner's own global options first
    (ffmpeg-python's ``global_args`` would put them last): never wait for a key, no banner,
    overwrite (the temporary name may exist), and how much to log."""
    compiled = graph.compile(cmd=ffmpeg_exe())
    return [compiled[0], "-nostdin", "-hide_banner", "-y", "-v", log_level, *compiled[1:]]


def run(graph: ffmpeg_python.nodes.OutputStream, output: Path | None = None, *, log_level: str = "error") -> str:
    """Run an ffmpeg-python ``graph``; when ``output`` is given it is the graph's output file,
    which appears only if ffmpeg succeeded. Returns stderr (``log_level`` "info" for what
    filters and the progress line report)."""
    cmd = _command(graph, log_level)
    tmp: Path | None = None
    if output is not None:
        # ffmpeg picks the muxer from the suffix, so keep it; unique per call, because two
        # threads may be producing the same cached file at once
        tmp = output.with_name(f"{output.stem}.part-{uuid.uuid4().hex[:8]}{output.suffix}")
        cmd[len(cmd) - 1 - cmd[::-1].index(str(output))] = str(tmp)
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


#: Where ffmpeg's report on its input ends and the one on its own output begins.
_OUTPUT_REPORT = re.compile(r"^(?:Stream mapping:|Output #0)", re.MULTILINE)


def probe_graph(path: Path) -> ffmpeg_python.nodes.OutputStream:
    """Open ``path`` and stop before the first frame (``t=0``): ffmpeg reports on the input
    first, as ``ffmpeg -i`` alone would, but that command has no output, so no graph builds it."""
    return ffmpeg_python.input(str(path)).output("-", f="null", t=0)


def probe(path: Path) -> AudioInfo:
    """Duration, codec, sample rate and channels of the first audio stream.

    Raises :class:`MediaError` when the file is not media or has no audio stream.
    """
    stderr = _run(_command(probe_graph(path), "info")).stderr
    # The exit status is not the answer: an input with no decoder for its codec, or with only
    # subtitles, fails when the output is set up, after the report on the input was printed.
    if "Input #0" not in stderr:
        raise MediaError(f"not readable as audio or video ({_why(stderr)})")
    report = _OUTPUT_REPORT.split(stderr, maxsplit=1)[0]
    stream = _AUDIO_STREAM.search(report)
    if stream is None:
        raise MediaError("contains no audio stream")
    duration_match = _DURATION.search(report)
    duration = None
    if duration_match:
        h, m, s = duration_match.groups()
        duration = int(h) * 3600 + int(m) * 60 + float(s)
    container = _INPUT.search(report)
    video = re.search(r"Stream #\S+.*?: Video: (\S+)", report)
    return AudioInfo(
        duration=duration,
        codec=stream.group(1),
        sample_rate=int(stream.group(2)) if stream.group(2) else None,
        channels=_channel_count(stream.group(3).strip()) if stream.group(3) else None,
        container=container.group(1) if container else None,
        # cover art in an MP3 shows as a video stream flagged "(attached pic)"
        has_video=bool(video) and "attached pic" not in report[video.start(): report.find("\n", video.start())],
    )


def _channel_count(layout: str) -> int | None:
    """Channels from the layout ffmpeg names: "stereo", "5.1(side)", or "3 channels" when it has no name."""
    counted = re.fullmatch(r"(\d+) channels", layout)
    return int(counted.group(1)) if counted else _CHANNELS.get(layout.split("(")[0])


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
