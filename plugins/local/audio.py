"""Reading audio and finding speech in it: the building blocks every offline step shares.

All samples are float32 mono at :data:`SAMPLE_RATE` (16 kHz), the rate every bundled model
expects. Times are seconds from the start of the array unless a function says otherwise.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

SAMPLE_RATE = 16000

Region = tuple[float, float]  # (start, end) in seconds


def decoded_chunks(path: str | Path, start: float, layout: str | None = "mono", sample_format: str = "s16p") -> Iterator[np.ndarray]:
    """Decode ``path`` from ``start`` seconds on at 16 kHz, yielding what the resampler gives
    as (channels, samples) arrays of ``sample_format``: the mix (``layout`` "mono") or every
    channel (``layout`` None: the stream's own)."""
    import av

    # Samples still to drop before ``start``: seeking lands on a packet at or before it.
    to_skip: int | None = None if start > 0 else 0
    with av.open(str(path), mode="r", metadata_errors="ignore") as container:
        stream = container.streams.audio[0]
        resampler = av.audio.resampler.AudioResampler(format=sample_format, layout=layout or stream.layout.name, rate=SAMPLE_RATE)
        if start > 0:
            container.seek(int(start / stream.time_base), stream=stream, backward=True, any_frame=False)
        for frame in itertools.chain(container.decode(stream), [None]):  # None flushes the resampler's tail
            if to_skip is None and frame is not None:
                frame_start = float(frame.pts * frame.time_base) if frame.pts is not None else 0.0
                to_skip = max(0, int(round((start - frame_start) * SAMPLE_RATE)))
            for resampled in resampler.resample(frame):
                samples = resampled.to_ndarray()
                if to_skip:
                    dropped = min(to_skip, samples.shape[1])
                    samples, to_skip = samples[:, dropped:], to_skip - dropped
                yield samples


def _decode_blocks(path: str | Path, start: float, block_seconds: float, channel: int | None = None) -> Iterator[np.ndarray]:
    """Decode ``path`` from ``start`` seconds on, yielding float32 16 kHz mono blocks of
    ``block_seconds`` (the last one shorter): the mix of all channels, or only ``channel``.
    Only one block is held in memory at a time."""
    block_samples = int(block_seconds * SAMPLE_RATE)
    pending: list[np.ndarray] = []
    pending_samples = 0
    for samples in decoded_chunks(path, start, "mono" if channel is None else None):
        pending.append(samples[channel or 0])
        pending_samples += samples.shape[1]
        while pending_samples >= block_samples:
            joined = np.concatenate(pending)
            yield joined[:block_samples].astype(np.float32) / 32768.0
            pending, pending_samples = [joined[block_samples:]], joined.size - block_samples
    if pending:
        tail = np.concatenate(pending)
        if tail.size:
            yield tail.astype(np.float32) / 32768.0


def load_audio(path: str | Path, start: float | None = None, duration: float | None = None) -> np.ndarray:
    """Decode ``path`` (any format PyAV/FFmpeg reads) to float32 16 kHz mono samples.

    ``start``/``duration`` (seconds) select a stretch without decoding the whole file into
    memory: decoding seeks to ``start`` and stops after ``duration``.
    """
    start = float(start or 0.0)
    wanted = None if duration is None else int(round(duration * SAMPLE_RATE))
    blocks: list[np.ndarray] = []
    have = 0
    for block in _decode_blocks(path, start, block_seconds=60.0):
        blocks.append(block)
        have += block.size
        if wanted is not None and have >= wanted:
            break
    samples = np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.float32)
    return samples if wanted is None else samples[:wanted]


@dataclass(frozen=True, slots=True)
class AudioWindow:
    """A stretch of a longer recording: ``samples`` start at ``offset`` seconds on its timeline.

    ``regions`` are the speech regions inside it, relative to ``offset``.
    """

    offset: float
    samples: np.ndarray
    regions: tuple[Region, ...]

    @property
    def duration(self) -> float:
        return self.samples.size / SAMPLE_RATE


_SHORT_TAIL = 0.25  # a last block under this share of a window is decoded with the window before it


def _limited_blocks(path: str | Path, start: float, end: float | None, window_seconds: float, channel: int | None) -> Iterator[np.ndarray]:
    """Blocks of ``window_seconds`` decoded from ``start``, stopping at ``end``."""
    limit = None if end is None else int(round((end - start) * SAMPLE_RATE))
    decoded = 0
    blocks = _decode_blocks(path, start, block_seconds=window_seconds, channel=channel)
    for block in blocks:
        if limit is not None:
            block = block[: max(0, limit - decoded)]
        decoded += block.size
        yield block
        if limit is not None and decoded >= limit:
            break
    blocks.close()


def stream_windows(
    path: str | Path,
    *,
    start: float = 0.0,
    end: float | None = None,
    window_seconds: float = 600.0,
    vad: "VadSettings | None" = None,
    channel: int | None = None,
) -> Iterator[AudioWindow]:
    """Decode ``path`` between ``start`` and ``end`` in windows of about ``window_seconds``,
    each cut in a pause so no speech region is split between two windows; the mix of all
    channels, or only ``channel``.

    Memory stays flat: at most one window plus the carried-over tail of the previous one is
    held. Every window carries its speech regions, found once here.
    """
    vad = vad or VadSettings()
    carry = np.zeros(0, dtype=np.float32)
    carry_offset = start
    blocks = _limited_blocks(path, start, end, window_seconds, channel)
    block = next(blocks, None)
    while block is not None:
        # Look one block ahead: the last block is not cut, so its tail is not a window of its own.
        following = next(blocks, None)
        if following is not None and following.size < _SHORT_TAIL * block.size:
            # Only the last block is short. It joins this window: a tiny window of its own
            # would cost a whole padded Whisper pass (recordings a little over a window are common).
            block, following = np.concatenate([block, following]), None
        buffer = np.concatenate([carry, block]) if carry.size else block
        regions = speech_regions(buffer, vad)
        if following is None or len(regions) < 2:
            break_point, head_regions = buffer.size, regions
        else:
            # The last region may go on in the next block: carry it over, cut in the pause before it.
            break_point, head_regions = int(regions[-1][0] * SAMPLE_RATE), regions[:-1]
        if break_point:
            yield AudioWindow(carry_offset, buffer[:break_point], tuple(head_regions))
        carry = buffer[break_point:]
        carry_offset += break_point / SAMPLE_RATE
        block = following
    blocks.close()


@dataclass(frozen=True, slots=True)
class VadSettings:
    """Silero VAD settings. The defaults keep turns apart (a 0.3 s pause ends a region) and
    cap regions at 30 s, Whisper's window, so one region always fits one decoding window."""

    threshold: float = 0.5
    min_silence_seconds: float = 0.3
    min_speech_seconds: float = 0.0  # as the bare engine: a lone short "Hello." is speech too
    pad_seconds: float = 0.1
    max_region_seconds: float = 30.0


def speech_regions(samples: np.ndarray, settings: VadSettings | None = None) -> list[Region]:
    """Speech regions ``[(start, end), ...]`` in seconds, found with the Silero VAD model
    bundled in faster-whisper. Empty for silence."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    settings = settings or VadSettings()
    if samples.size < SAMPLE_RATE // 10:
        return []
    options = VadOptions(
        threshold=settings.threshold,
        min_speech_duration_ms=int(settings.min_speech_seconds * 1000),
        min_silence_duration_ms=int(settings.min_silence_seconds * 1000),
        speech_pad_ms=int(settings.pad_seconds * 1000),
        max_speech_duration_s=settings.max_region_seconds,
    )
    chunks = get_speech_timestamps(samples, options, sampling_rate=SAMPLE_RATE)
    return [(chunk["start"] / SAMPLE_RATE, chunk["end"] / SAMPLE_RATE) for chunk in chunks]


def speech_overlap(start: float, end: float, regions: tuple[Region, ...] | list[Region]) -> float:
    """Share (0..1) of ``[start, end]`` that lies inside ``regions``."""
    if end <= start:
        return 0.0
    covered = sum(max(0.0, min(end, r_end) - max(start, r_start)) for r_start, r_end in regions)
    return min(1.0, covered / (end - start))


def slice_seconds(samples: np.ndarray, start: float, end: float) -> np.ndarray:
    """``samples`` from ``start`` to ``end`` seconds, to the nearest sample: times computed in
    seconds (0.956 - 0.3 = 0.6559999...) must not lose a sample, since Whisper hears a clip
    one sample later differently (measured: another second window on a dev dialogue)."""
    return samples[max(0, round(start * SAMPLE_RATE)) : max(0, round(end * SAMPLE_RATE))]
