"""Every ffmpeg command runpipe runs is an ffmpeg-python graph (issue 15). Each test here records
the command a graph compiles to and compares it with the hand-built argv it replaced (kept below as
it was), so the change is provably the same work on whichever ffmpeg build runs the tests."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from runpipe import ffmpeg
from runpipe.chunking import find_silences
from runpipe.media import DEFAULT_BITRATE, FORMATS, Target, normalize, slice_audio
from runpipe.model import TimeRange
from runpipe.plugins.sources import _file_item
from runpipe.testing import write_wav

#: The runner's global options, as every hand-built command had them.
RUNNER = ["-nostdin", "-hide_banner", "-y"]


def encoder_before(fmt: str) -> list[str]:
    """The encoder options runpipe's hand-built commands gave each shipped format."""
    encoder = {"ogg": "libvorbis", "flac": "flac", "mp3": "libmp3lame", "wav": "pcm_s16le", "aac": "aac", "aiff": "pcm_s16be"}[fmt]
    return ["-c:a", encoder, *(["-b:a", DEFAULT_BITRATE[fmt]] if fmt in DEFAULT_BITRATE else [])]


def normalize_before(fmt: str, source: Path, out: str) -> list[str]:
    return [*RUNNER, "-v", "error", "-i", str(source), "-map", "0:a:0", "-vn", "-sn", "-dn",
            "-ac", "1", "-ar", "16000", *encoder_before(fmt), out]


def slice_before(fmt: str, start: float, seconds: float, source: Path, out: str) -> list[str]:
    return [*RUNNER, "-v", "error", "-ss", f"{start:.3f}", "-t", f"{seconds:.3f}", "-i", str(source),
            "-ac", "1", "-ar", "16000", *encoder_before(fmt), out]


def decoded_duration_before(source: Path) -> list[str]:
    return [*RUNNER, "-v", "info", "-i", str(source), "-vn", "-f", "null", "-"]


def silencedetect_before(source: Path, span: TimeRange) -> list[str]:
    return [*RUNNER, "-v", "info", "-ss", f"{span.start:.3f}", "-t", f"{span.end - span.start:.3f}", "-i", str(source),
            "-af", "silencedetect=n=-35dB:d=0.4", "-f", "null", "-"]


def same_work(argv: list[str]) -> tuple:
    """A command line as what it asks of ffmpeg: options before the input, the input, and the
    output's options as a set (ffmpeg-python sorts them; their order within a file does not matter)."""
    i = argv.index("-i")
    before, input_path, after = argv[:i], argv[i + 1], argv[i + 2:-1]
    options, k = set(), 0
    while k < len(after):
        takes_value = k + 1 < len(after) and not after[k + 1].startswith("-")
        options.add((after[k], after[k + 1] if takes_value else None))
        k += 2 if takes_value else 1
    return tuple(before), input_path, frozenset(options), argv[-1]


@pytest.fixture
def ran(monkeypatch) -> list[list[str]]:
    """Every command runpipe's runner starts, without the binary's path (it is the chosen one)."""
    commands: list[list[str]] = []
    real_run = ffmpeg.subprocess.run

    def recording(cmd, **kwargs):
        assert cmd[0] == ffmpeg.ffmpeg_exe()
        commands.append(cmd[1:])
        return real_run(cmd, **kwargs)

    monkeypatch.setattr(ffmpeg.subprocess, "run", recording)
    return commands


def skip_without_encoder(fmt: str) -> None:
    if fmt == "ogg" and "libvorbis" not in ffmpeg.encoders():
        pytest.skip("this ffmpeg has only the native vorbis encoder, which the hand-built commands never chose")


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_normalize_runs_the_command_it_ran_before(fmt, media_dir, ran):
    skip_without_encoder(fmt)
    audio = normalize(_file_item(media_dir / "tone.wav"), Target(format=fmt))
    encode = next(cmd for cmd in ran if "-map" in cmd)
    part = encode[-1]
    assert ".part-" in part and Path(part).suffix == audio.path.suffix  # the runner's temporary name
    assert same_work(encode) == same_work(normalize_before(fmt, media_dir / "tone.wav", part))


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_slicing_runs_the_command_it_ran_before(fmt, media_dir, ran):
    skip_without_encoder(fmt)
    audio = normalize(_file_item(media_dir / "tone.wav"), Target(format=fmt))
    ran.clear()
    window = slice_audio(audio, TimeRange(0.75, 2.5))
    assert window.source_offset == 0.75  # where a backend reading the source finds it
    [cut] = ran
    assert Path(cut[-1]).name.startswith(window.path.stem + ".part-")
    assert same_work(cut) == same_work(slice_before(fmt, 0.75, 1.75, audio.path, cut[-1]))
    padding = 0.1 if fmt == "aac" else 0.0  # raw ADTS keeps the encoder's priming and padding (measured on both builds)
    assert ffmpeg.decoded_duration(window.path) == pytest.approx(1.75 + padding, abs=0.02)


def test_measuring_by_decoding_runs_the_command_it_ran_before(media_dir, ran):
    assert ffmpeg.decoded_duration(media_dir / "clip.mp4") == pytest.approx(3.0, abs=0.05)
    [decode] = ran
    assert same_work(decode) == same_work(decoded_duration_before(media_dir / "clip.mp4"))


def filter_written_simply(argv: list[str]) -> list[str]:
    """``argv`` with its one audio filter written ``-af NAME=OPTIONS``, the options sorted.
    ffmpeg-python writes a filter as a graph, ``-filter_complex [0]F[s0] -map [s0]``: for an input
    with one audio stream that is the same filter on the same stream, and option order means nothing."""
    if "-filter_complex" in argv:
        k = argv.index("-filter_complex")
        spec = re.fullmatch(r"\[0\](.*)\[s0\]", argv[k + 1]).group(1)
        argv = argv[:k] + argv[k + 2:]
        m = argv.index("-map")
        assert argv[m + 1] == "[s0]"
        argv = argv[:m] + argv[m + 2:]
    else:
        k = argv.index("-af")
        spec = argv[k + 1]
        argv = argv[:k] + argv[k + 2:]
    name, options = spec.split("=", 1)
    return [*argv[:-1], "-af", f"{name}={':'.join(sorted(options.split(':')))}", argv[-1]]


def reported_silences(argv: list[str]) -> list[str]:
    stderr = subprocess.run([ffmpeg.ffmpeg_exe(), *argv], capture_output=True, text=True, check=True).stderr
    return re.findall(r"silence_(?:start|end): \S+", stderr)


def test_silence_detection_runs_the_command_it_ran_before(tmp_path, ran):
    rate = 16000
    tone = 0.3 * np.sin(2 * np.pi * 220 * np.arange(2 * rate) / rate)
    path = write_wav(tmp_path / "gaps.wav", np.concatenate([tone, np.zeros(rate), tone, np.zeros(rate), tone]), rate)
    span = TimeRange(0.5, 7.5)
    audio = normalize(_file_item(path), Target(format="wav"))
    ran.clear()
    assert [(round(a, 1), round(b, 1)) for a, b in find_silences(audio, span=span)] == [(2.0, 3.0), (5.0, 6.0)]
    [detect] = ran
    before = silencedetect_before(audio.path, span)
    assert same_work(filter_written_simply(detect)) == same_work(filter_written_simply(before))
    # and ffmpeg reports the same silences, to the digit, for both command lines
    assert reported_silences(before) and reported_silences(detect) == reported_silences(before)


PROBED = ["tone.wav", "tone.mp3", "tone.flac", "tone.ogg", "tone.aiff", "tone.m4a", "tone.webm", "tone.opus", "clip.mp4"]


@pytest.mark.parametrize("name", PROBED)
def test_probing_reads_what_the_bare_input_report_said(name, media_dir, monkeypatch):
    """The probe graph adds an output that stops before the first frame to what runpipe ran
    before, ``ffmpeg -i FILE``; ffmpeg's report on the input reads the same."""
    path = media_dir / name
    info = ffmpeg.probe(path)
    before = [ffmpeg.ffmpeg_exe(), "-nostdin", "-hide_banner", "-i", str(path)]
    monkeypatch.setattr(ffmpeg, "_command", lambda graph, log_level: before)
    assert ffmpeg.probe(path) == info
    assert info.channels == 2 and info.duration == pytest.approx(3.0, abs=0.1)  # the report was read


@pytest.mark.parametrize("name", PROBED)
def test_probing_finds_what_ffprobe_found(name, media_dir):
    """Where an ffprobe sits beside the chosen ffmpeg (Debian's), runpipe used to ask it; the
    probe graph finds the same facts there."""
    ffprobe = Path(ffmpeg.ffmpeg_exe()).with_name("ffprobe")
    if not ffprobe.exists():
        pytest.skip("no ffprobe beside this ffmpeg: runpipe never used one with it")
    path = media_dir / name
    data = json.loads(subprocess.run([str(ffprobe), "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)],
                                     capture_output=True, text=True, check=True).stdout)
    audio = next(s for s in data["streams"] if s["codec_type"] == "audio")
    info = ffmpeg.probe(path)
    assert (info.codec, info.sample_rate, info.channels, info.container, info.has_video) == (
        audio["codec_name"], int(audio["sample_rate"]), audio["channels"], data["format"]["format_name"], name == "clip.mp4")
    assert info.duration == pytest.approx(float(audio.get("duration") or data["format"]["duration"]), abs=0.05)
