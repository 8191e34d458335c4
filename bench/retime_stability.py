"""Do re-timed segment starts depend on which ffmpeg (or which dependency versions) ran?

Issue 12 asks that the same input give segment starts within 0.1 s of each other across the
ffmpeg builds people have (Debian's, imageio-ffmpeg's) and the pinned dependency versions.
This runs ``bench/bench_retime.py`` once per ffmpeg build (``RUNPIPE_FFMPEG``), each with a
cache of its own (every build normalizes and recognises each file once, its drifts share it),
and prints, per file and drift, the largest difference between the builds' starts of the
same segment; ``--also`` adds the starts another environment wrote (``bench_retime.py
--starts FILE`` in a venv with other versions).

    python bench/retime_stability.py                          # Debian's and imageio-ffmpeg's
    python bench/retime_stability.py --also /tmp/ct2-46.json  # and another venv's starts

Every argument after ``--`` goes to bench_retime.py (e.g. ``-- --only sample``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent / "bench_retime.py"


def imageio_ffmpeg() -> str:
    import imageio_ffmpeg as package

    return package.get_ffmpeg_exe()


def run_bench(ffmpeg: str, out: Path, cache: Path, extra: list[str]) -> dict:
    env = {**os.environ, "RUNPIPE_FFMPEG": ffmpeg}
    print(f"== bench_retime.py with RUNPIPE_FFMPEG={ffmpeg}", flush=True)
    subprocess.run([sys.executable, str(BENCH), "--starts", str(out), "--cache", str(cache), *extra], env=env, check=True)
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ffmpeg", action="append", help="an ffmpeg binary (repeatable; default: /usr/bin/ffmpeg and imageio-ffmpeg's)")
    parser.add_argument("--also", type=Path, action="append", default=[], help="starts written by bench_retime.py --starts elsewhere")
    parser.add_argument("--keep", type=Path, help="folder to keep each build's starts in")
    parser.add_argument("rest", nargs=argparse.REMAINDER, help="-- then arguments for bench_retime.py")
    args = parser.parse_args()
    builds = args.ffmpeg or ["/usr/bin/ffmpeg", imageio_ffmpeg()]
    extra = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    with tempfile.TemporaryDirectory() as folder:
        keep = args.keep or Path(folder)
        keep.mkdir(parents=True, exist_ok=True)
        runs = {build: run_bench(build, keep / f"starts-{index}.json", Path(folder) / f"cache-{index}", extra)
                for index, build in enumerate(builds)}
    runs.update({str(path): json.loads(path.read_text()) for path in args.also})
    labels = list(runs)
    print("\nlargest start difference between " + " / ".join(f"[{i}] {label}" for i, label in enumerate(labels)))
    print(f"{'file':<22} {'drift':<7} {'max diff (s)':>12} {'segment':>8} {'starts':>s}")
    worst = 0.0
    first = runs[labels[0]]["starts"]
    for name, drifts in first.items():
        for drift, reference in drifts.items():
            columns = [runs[label]["starts"].get(name, {}).get(drift) for label in labels]
            if any(c is None or len(c) != len(reference) for c in columns):
                print(f"{name:<22} {drift:<7} {'(not run by every build)':>12}")
                continue
            spread = [max(c[k] for c in columns) - min(c[k] for c in columns) for k in range(len(reference))]
            k = max(range(len(spread)), key=spread.__getitem__)
            worst = max(worst, spread[k])
            print(f"{name:<22} {drift:<7} {spread[k]:12.3f} {k:8d} " + " / ".join(f"{c[k]:.3f}" for c in columns))
    print(f"largest difference over all: {worst:.3f} s (issue 12: at most 0.1 s)")


if __name__ == "__main__":
    main()
