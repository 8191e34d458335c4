"""How close does a batch come to the ideal wall time when the backend is slow?

N inputs (distinct tones) run through the engine with the local thread executor against a
backend with a fixed latency per request: ``sleep`` (a backend that sleeps: the engine's own
overhead, nothing else) or ``gemini-server`` (the real Gemini backend and google-genai SDK
against runpipe.testing.gemini_server answering after the latency). Three runs:

* cold: concurrency C, nothing cached (normalization transcodes every input);
* warm: concurrency C again, normalized audio cached, analysis redone (pipeline ``cache: false``);
* serial: concurrency 1, warm.

Printed: wall time against the ideal (N x latency / C) and against the serial run, and the
engine's own time per input beyond the latency. Targets (issue 6): within 1.3x of ideal at
concurrency 16 for 200 inputs; overhead under 50 ms per input.

    /work/venv/bin/python bench/bench_concurrency.py [--inputs 200] [--latency 0.2] [--concurrency 16]
        [--backend sleep|gemini-server]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from contextlib import contextmanager
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

from runpipe.hookspecs import hookimpl
from runpipe.interfaces import Backend
from runpipe.model import Analysis, AudioFile, Task, TimeRange, Usage
from runpipe.testing import make_engine, tone_wav

ANSWER = {
    "summary": "A tone.",
    "segments": [
        {"speaker": "Speaker 1", "timestamp": "00:00", "content": "beep", "language": "English",
         "language_code": "en", "translation": "", "emotion": "neutral"},
    ],
}


STAGES = ("normalize", "analyze", "postprocess", "export")


class SlowBackend(Backend):
    """Answers after ``latency`` seconds, as a remote model would; costs no CPU while waiting."""

    name = "slow"
    option_names = ("latency",)

    def analyze(self, audio: AudioFile, task: Task, *, window: TimeRange | None = None) -> Analysis:
        time.sleep(float(self.options["latency"]))
        return Analysis(task=task.name, data=ANSWER, backend=self.name, model="slow-1", usage=Usage(requests=1))


class SlowBackendPlugin:
    @hookimpl
    def runpipe_register_backends(self, register):
        register(SlowBackend)


@dataclass(frozen=True, slots=True)
class Measurement:
    label: str
    inputs: int
    concurrency: int
    latency: float
    wall: float
    stage_ms: Mapping[str, float]  # mean time per input in each stage, as the engine timed it

    @property
    def ideal(self) -> float:
        return self.inputs * self.latency / self.concurrency

    @property
    def overhead_per_input(self) -> float:
        """Time each worker slot spent per input on top of the backend's latency."""
        return (self.wall - self.ideal) * self.concurrency / self.inputs


@dataclass(frozen=True, slots=True)
class Setup:
    """The backend under test: how the pipeline names it, and the fake server when there is one."""

    backend: str
    backend_options: Mapping[str, Any]
    normalize: Mapping[str, Any]
    server: Any = None

    def pipeline(self, concurrency: int, cache: bool) -> dict:
        options = dict(self.backend_options)
        if self.server is not None:
            # the Gemini backend bounds its own requests (default 4) below the pipeline's concurrency
            options["concurrency"] = concurrency
        return {
            "name": "bench",
            # cache false: every run asks the backend again, while normalized media stays cached
            "cache": cache,
            "stages": {
                "normalize": dict(self.normalize),
                "analyze": {"backend": self.backend, "backends": {self.backend: options}, "tasks": [{"prompt": "transcript"}]},
                "postprocess": {"steps": []},  # the engine's own overhead, not re-timing's
                "export": {"formats": ["json"]},
            },
        }


@contextmanager
def backend_setup(kind: str, latency: float) -> Iterator[Setup]:
    if kind == "sleep":
        yield Setup("slow", {"latency": latency}, {})
        return
    from runpipe.testing.gemini_server import FakeGemini

    with FakeGemini() as server:
        os.environ["GEMINI_API_KEY"] = server.api_key
        os.environ["GOOGLE_GEMINI_BASE_URL"] = server.base_url
        # The fake server decodes audio other than WAV/FLAC with ffmpeg to count tokens, in this
        # process; FLAC keeps that cost, which real Gemini does not put on us, out of the figures.
        yield Setup("gemini", {}, {"format": "flac"}, server)


def measure(label: str, setup: Setup, inputs: list[Path], out: Path, latency: float, concurrency: int, cache: bool) -> Measurement:
    if setup.server is not None:
        from runpipe.testing.gemini_server import Answer

        setup.server.script(*(Answer(ANSWER, delay=latency) for _ in inputs))
    with make_engine([SlowBackendPlugin()]) as engine:
        pipeline = engine.load_dict(setup.pipeline(concurrency, cache))
        started = time.perf_counter()
        result = engine.run(pipeline, inputs, output_dir=out, concurrency=concurrency)
        wall = time.perf_counter() - started
    failed = result.failed
    if failed:
        sys.exit(f"{label}: {len(failed)} inputs failed, first: {failed[0].error}")
    stage_ms = {stage: 1000 * statistics.mean(r.timings[stage] for r in result.inputs) for stage in STAGES}
    return Measurement(label, len(inputs), concurrency, latency, wall, stage_ms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per backend request")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--backend", choices=("sleep", "gemini-server"), default="sleep")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="runpipe-bench-") as scratch:
        root = Path(scratch)
        os.environ["RUNPIPE_USER_PATH"] = str(root / "user")  # a fresh run store and media cache
        (root / "in").mkdir()
        inputs = [tone_wav(root / "in" / f"tone{i:04}.wav", seconds=2.0, freq=100.0 + i) for i in range(args.inputs)]
        with backend_setup(args.backend, args.latency) as setup:
            runs = [
                measure("cold", setup, inputs, root / "out", args.latency, args.concurrency, cache=True),
                measure("warm", setup, inputs, root / "out", args.latency, args.concurrency, cache=False),
                measure("serial", setup, inputs, root / "out", args.latency, 1, cache=False),
            ]
    serial = runs[-1]
    print(f"{args.inputs} inputs, backend {args.backend}, {args.latency * 1000:.0f} ms per request, {os.cpu_count()} cores")
    print(f"{'run':<8}{'conc.':>6}{'wall s':>9}{'ideal s':>9}{'x ideal':>9}{'x serial':>10}{'overhead ms/input':>19}"
          "   mean ms per input: " + " ".join(f"{stage:>11}" for stage in STAGES))
    for m in runs:
        print(f"{m.label:<8}{m.concurrency:>6}{m.wall:>9.2f}{m.ideal:>9.2f}{m.wall / m.ideal:>9.2f}"
              f"{m.wall / serial.wall:>10.3f}{m.overhead_per_input * 1000:>19.1f}"
              "                      " + " ".join(f"{m.stage_ms[stage]:>11.1f}" for stage in STAGES))


if __name__ == "__main__":
    main()
