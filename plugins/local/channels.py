"""Recordings with one talker per channel (a call recorded on two lines, an interview with a
microphone per guest): each channel is analysed on its own before anything is mixed.

Mixed to mono, two talkers who speak at once become one voice and one transcript (a stereo
clip of two overlapping sentences came back as one sentence and one speaker). A channel
belongs to its own talker when the channels' loudness differs clearly and each channel leads
in a fair share of the speech; a mono mix copied to both channels, or one room heard by two
microphones, has channels that rise and fall together and is analysed as one.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runpipe.plugins.local.audio import SAMPLE_RATE, Region, decoded_chunks

_FRAME_SECONDS = 0.01
_FRAME = int(SAMPLE_RATE * _FRAME_SECONDS)


@dataclass(frozen=True, slots=True)
class ChannelSettings:
    # A frame is heard if it is within this of the loudest frame (speech, not the noise floor).
    heard_below_peak_db: float = 30.0
    # A channel leads a frame when it is this much louder than every other channel: a talker's
    # own microphone beats the other's pick-up of them by far more (bleed is 20 dB or more
    # down), two microphones in one room by less.
    lead_db: float = 6.0
    # Most heard frames must be led by one channel, and every channel must lead this share of
    # them: otherwise one talker sits nearer one side of a shared room.
    led_share: float = 0.5
    min_lead_share: float = 0.1
    # Channels that stay this close on the first stretch heard are one mix (a stereo copy of
    # mono): no need to read the rest of the file.
    same_mix_db: float = 1.0
    same_mix_seconds: float = 60.0


@dataclass(frozen=True, slots=True)
class TalkerChannels:
    """Per-channel loudness (dB per 10 ms frame, from ``start``) of a recording whose channels
    each carry their own talker."""

    loudness: np.ndarray  # (channels, frames)

    @property
    def count(self) -> int:
        return self.loudness.shape[0]

    def own_regions(self, channel: int, regions: list[Region], offset: float, settings: "ChannelSettings") -> list[Region]:
        """The speech regions of ``channel`` (times from ``offset``) that are its own talker,
        not the other talker bleeding in: where this channel is not led by another."""
        own = []
        for start, end in regions:
            first = int((offset + start) / _FRAME_SECONDS)
            last = max(first + 1, int((offset + end) / _FRAME_SECONDS))
            loudness = self.loudness[:, first:last]
            if loudness.shape[1] == 0:
                continue
            others = np.delete(loudness, channel, axis=0).max(axis=0)
            led_by_other = np.mean(others - loudness[channel] >= settings.lead_db)
            if led_by_other < 0.5:
                own.append((start, end))
        return own


def talker_channels(path: str | Path, start: float, end: float | None, settings: ChannelSettings = ChannelSettings()) -> TalkerChannels | None:
    """The channels' loudness when each channel carries its own talker, else None (mono, or
    channels that are one mix)."""
    chunks = decoded_chunks(path, start, layout=None, sample_format="fltp")
    first = next(chunks, None)
    if first is None or first.shape[0] < 2:
        return None
    channels = first.shape[0]
    loudness: list[np.ndarray] = []
    pending = np.zeros((channels, 0), dtype=np.float32)
    limit = None if end is None else int(round((end - start) * SAMPLE_RATE))
    taken = 0
    judged_mix = False  # whether the first stretch heard has been compared yet
    for samples in itertools.chain([first], chunks):
        if limit is not None:
            samples = samples[:, : max(0, limit - taken)]
        taken += samples.shape[1]
        pending = np.concatenate([pending, samples], axis=1)
        whole = pending.shape[1] // _FRAME * _FRAME
        if whole:
            blocks = pending[:, :whole].reshape(channels, -1, _FRAME)
            loudness.append(10 * np.log10(np.mean(blocks.astype(np.float64) ** 2, axis=2) + 1e-10))
            pending = pending[:, whole:]
        if limit is not None and taken >= limit:
            break
        # Judged once, on the first stretch: judging again at every decoded chunk summed
        # and joined everything heard so far each time (1.1 s on a one-minute mp3).
        if not judged_mix and taken >= settings.same_mix_seconds * SAMPLE_RATE:
            judged_mix = True
            if _one_mix(np.concatenate(loudness, axis=1), settings):
                return None
    if not loudness:
        return None
    levels = np.concatenate(loudness, axis=1)
    return TalkerChannels(levels) if _own_talkers(levels, settings) else None


def _heard(levels: np.ndarray, settings: ChannelSettings) -> np.ndarray:
    loudest = levels.max(axis=0)
    return loudest >= loudest.max() - settings.heard_below_peak_db


def _one_mix(levels: np.ndarray, settings: ChannelSettings) -> bool:
    heard = _heard(levels, settings)
    spread = levels[:, heard].max(axis=0) - levels[:, heard].min(axis=0)
    return bool(heard.any()) and float(np.mean(spread)) < settings.same_mix_db


def _own_talkers(levels: np.ndarray, settings: ChannelSettings) -> bool:
    heard = levels[:, _heard(levels, settings)]
    if heard.shape[1] == 0:
        return False
    order = np.sort(heard, axis=0)
    led = order[-1] - order[-2] >= settings.lead_db
    if np.mean(led) < settings.led_share:
        return False
    leaders = np.argmax(heard[:, led], axis=0)
    shares = np.bincount(leaders, minlength=heard.shape[0]) / max(1, leaders.size)
    return bool(shares.min() >= settings.min_lead_share)
