"""Audio files on disk: hashing, normalizing to what Gemini accepts, slicing windows.

Normalized files live in the cache folder under their source's content hash and the target
settings, so a rerun (or a second pipeline on the same file) never transcodes again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import ffmpeg as ffmpeg_python

from runpipe import ffmpeg
from runpipe.atomic import write_atomic
from runpipe.errors import MediaError
from runpipe.model import AudioFile, AudioInfo, MediaItem, TimeRange
from runpipe.paths import cache_dir


@dataclass(frozen=True, slots=True)
class Target:
    """What normalization produces: format, sample rate, channels, bitrate (a pipeline's
    ``stages.normalize``)."""

    format: str = "ogg"
    sample_rate: int = 16000
    channels: int = 1
    bitrate: str | None = None


# format -> (suffix, MIME type Gemini accepts, ffmpeg encoder choices in order of preference)
FORMATS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "ogg": (".ogg", "audio/ogg", ("libvorbis", "vorbis")),
    "flac": (".flac", "audio/flac", ("flac",)),
    "mp3": (".mp3", "audio/mp3", ("libmp3lame",)),
    "wav": (".wav", "audio/wav", ("pcm_s16le",)),
    "aac": (".aac", "audio/aac", ("aac",)),
    "aiff": (".aiff", "audio/aiff", ("pcm_s16be",)),
}
# The smallest file Gemini still hears everything in: it downsamples to 16 kHz mono anyway.
DEFAULT_BITRATE = {"ogg": "32k", "mp3": "32k", "aac": "32k"}
#: Decoding less than this share of the duration the header promises (and over a second less)
#: means the file is cut off or damaged; a partial transcript would silently lose the rest.
TRUNCATION_RATIO = 0.9

# ffmpeg is CPU-bound: never run more encodes at once than there are cores.
_ENCODE_SLOTS = threading.BoundedSemaphore(max(1, os.cpu_count() or 1))


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _encoder_options(target: Target) -> dict[str, str | None]:
    _, _, choices = FORMATS[target.format]
    available = ffmpeg.encoders()
    encoder = next((c for c in choices if c in available), None)
    if encoder is None:
        raise MediaError(f"this ffmpeg ({ffmpeg.ffmpeg_exe()}) cannot encode {target.format}; choose another normalize.format")
    options: dict[str, str | None] = {"c:a": encoder}
    if encoder == "vorbis":
        options["strict"] = "-2"  # ffmpeg's native vorbis encoder is marked experimental
    bitrate = target.bitrate or DEFAULT_BITRATE.get(target.format)
    if bitrate:
        options["b:a"] = bitrate
    return options


def normalize_graph(path: Path, target: Target, out: Path) -> ffmpeg_python.nodes.OutputStream:
    """The first audio stream of ``path`` as ``target`` in ``out``; video, subtitles and data
    streams left behind."""
    first_audio = ffmpeg_python.input(str(path))["a:0"]
    return first_audio.output(str(out), vn=None, sn=None, dn=None, ac=target.channels, ar=target.sample_rate,
                              **_encoder_options(target))


def slice_graph(path: Path, start: float, seconds: float, target: Target, out: Path) -> ffmpeg_python.nodes.OutputStream:
    """``seconds`` of ``path`` from ``start``, re-encoded as ``target`` in ``out``."""
    window = ffmpeg_python.input(str(path), ss=f"{start:.3f}", t=f"{seconds:.3f}")
    return window.output(str(out), ac=target.channels, ar=target.sample_rate, **_encoder_options(target))


def _check_file(item: MediaItem) -> Path:
    path = item.path
    assert path is not None
    if not path.exists():
        raise MediaError(f"{item.name}: file does not exist")
    if path.stat().st_size == 0:
        raise MediaError(f"{item.name}: file is empty (0 bytes)")
    return path


def probe_input(item: MediaItem) -> AudioInfo:
    path = _check_file(item)
    try:
        info = ffmpeg.probe(path)
    except MediaError as exc:
        raise MediaError(f"{item.name}: {exc}") from None
    if info.duration is not None and info.duration <= 0:
        raise MediaError(f"{item.name}: audio has zero duration")
    return info


def _sidecar(out: Path) -> Path:
    """What was learnt while normalizing, kept beside the cached file: a cache hit then needs
    no ffmpeg process at all (two probes cost more than the rest of a cached input)."""
    return out.with_name(out.name + ".json")


def _cached(out: Path) -> tuple[AudioInfo, float] | None:
    try:
        data = json.loads(_sidecar(out).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not out.exists():
        return None
    return AudioInfo(**data["original"]), float(data["duration"])


def _transcode(item: MediaItem, path: Path, target: Target, out: Path) -> tuple[AudioInfo, float]:
    """Probe, transcode into ``out`` and check the result; returns (source info, duration)."""
    info = probe_input(item)
    with _ENCODE_SLOTS:
        try:
            ffmpeg.run(normalize_graph(path, target, out), output=out)
        except MediaError as exc:
            raise MediaError(f"{item.name}: cannot decode the audio ({exc})") from None
    try:
        duration = ffmpeg.probe(out).duration
        if not duration:  # some muxers leave the duration out of the header: measure it
            duration = ffmpeg.decoded_duration(out)
    except MediaError:  # e.g. an input with no samples gives a file holding only headers
        duration = 0.0
    if duration <= 0:
        out.unlink(missing_ok=True)
        raise MediaError(f"{item.name}: no decodable audio (zero duration after decoding)")
    if info.duration and duration < info.duration * TRUNCATION_RATIO and info.duration - duration > 1.0:
        out.unlink(missing_ok=True)
        raise MediaError(
            f"{item.name}: truncated or corrupt: the header says {info.duration:.1f} s but only {duration:.1f} s decode"
        )
    return info, duration


def normalize(item: MediaItem, target: Target, *, force: bool = False) -> AudioFile:
    """Probe ``item``, refuse what is not usable audio, and transcode to ``target`` (cached;
    ``force`` transcodes again even when the cached file exists)."""
    if item.path is None:
        raise MediaError(f"{item.name}: only local files can be normalized")
    path = _check_file(item)
    content_hash = sha256_file(path)
    suffix, mime, _ = FORMATS[target.format]
    settings = f"{target.sample_rate}hz-{target.channels}ch-{target.bitrate or DEFAULT_BITRATE.get(target.format, 'lossless')}"
    out = cache_dir("normalized") / f"{content_hash}-{settings}{suffix}"
    cached = None if force else _cached(out)
    if cached is not None:
        info, duration = cached
    else:
        info, duration = _transcode(item, path, target, out)
        write_atomic(_sidecar(out), json.dumps({"original": dataclasses.asdict(info), "duration": duration}))
    return AudioFile(
        source=item,
        path=out,
        mime_type=mime,
        duration=duration,
        content_hash=content_hash,
        original=info,
        sample_rate=target.sample_rate,
        channels=target.channels,
        bytes_before=path.stat().st_size,
        bytes_after=out.stat().st_size,
    )


def slice_audio(audio: AudioFile, window: TimeRange) -> AudioFile:
    """The stretch ``window`` of ``audio`` as its own file (cached), same format.

    Stream copy would cut at packet boundaries and shift times; re-encoding a window of
    already-normalized audio is cheap and exact.
    """
    if audio.path is None:
        raise MediaError(f"{audio.source.name}: a remote reference cannot be sliced")
    end = window.end if window.end is not None else audio.duration
    suffix = audio.path.suffix
    out = cache_dir("windows") / f"{audio.path.stem}-{window.start:.3f}-{end:.3f}{suffix}"
    if not out.exists():
        fmt = next(name for name, (sfx, _, _) in FORMATS.items() if sfx == suffix)
        target = Target(fmt, audio.sample_rate or 16000, audio.channels or 1)
        with _ENCODE_SLOTS:
            seconds = max(0.01, (end or 0) - window.start)
            ffmpeg.run(slice_graph(audio.path, window.start, seconds, target, out), output=out)
    duration = (end or window.start) - window.start
    return AudioFile(
        source=audio.source,
        path=out,
        mime_type=audio.mime_type,
        duration=duration,
        # a window is different content: caches keyed by hash must not mistake it for the whole
        content_hash=hashlib.sha256(f"{audio.content_hash}@{window.start:.3f}-{end:.3f}".encode()).hexdigest(),
        original=audio.original,
        sample_rate=audio.sample_rate,
        channels=audio.channels,
        bytes_before=audio.bytes_after,
        bytes_after=out.stat().st_size,
        source_offset=audio.source_offset + window.start,
    )
