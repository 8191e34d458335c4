"""Where do segments start when the timeline comes from Gemini 3.5 Transcribe?

For each composed dev recording (../shared/devaudio/composed/*.mp3, passages with exact times in
MANIFEST.json), FakeGemini answers through the real SDK as the two models would:

* the transcription model with the manifest's passages as utterances (word times spread over each
  passage by length, a speaker label per voice, the passage's language);
* the general model with the same passages as segments, every seventh word misspelt and the MM:SS
  timestamps drifted like Gemini's (t * 1.08 + 4 s, whole seconds), plus translations.

``runpipe <podcast.yaml> FILE --backend gemini`` runs in a subprocess in four set-ups: the
timeline from the transcription model or not (the key has no access: 404), and the offline models
installed or blocked (their imports fail). Prints, per set-up, the share of passages whose segment
starts within 0.5 s of the passage, the median and 90th percentile start error, and the wall time.

The transcript's times are the manifest's, so the timeline rows measure what runpipe does with
Google's times (merge, no re-timing over them), not how accurate Google's times are.

    python bench/bench_transcribe_timeline.py                # all four set-ups (run from the checkout)
    python bench/bench_transcribe_timeline.py --no-whisper   # skip the one that re-times with Whisper
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from runpipe.plugins.local.models import REQUIRED_PACKAGES  # noqa: E402
from runpipe.testing.fake_transcribe import Transcript, Utterance, general_answer  # noqa: E402
from runpipe.testing.gemini_server import Answer, FakeGemini  # noqa: E402

DEFAULT_DEVAUDIO = Path("../shared/devaudio")


def transcript_of(passages: list[dict]) -> Transcript:
    """The passages as the transcription model would hear them: words spread by length."""
    voices: dict[str, str] = {}
    utterances = []
    for passage in passages:
        label = voices.setdefault(passage["speaker"], f"spk_{len(voices) + 1}")
        words = passage["text"].split()
        span, total = passage["end"] - passage["start"], sum(len(w) + 1 for w in words)
        t, timed = passage["start"], []
        for word in words:
            step = span * (len(word) + 1) / total
            timed.append((word, round(t, 3), round(t + step * 0.9, 3)))
            t += step
        utterances.append(Utterance.spoken(label, passage["language"], timed))
    return Transcript(tuple(utterances))


def misspelt(text: str) -> str:
    return " ".join(w[::-1] if i % 7 == 6 else w for i, w in enumerate(text.split()))


def drifted_answer(passages: list[dict], transcript: Transcript) -> dict:
    answer = general_answer(transcript, drift=0.0, summary="Dev recording.", fields=lambda i, u: {
        "content": misspelt(u.text), "language": u.language_code, "translation": passages[i].get("translation_en", ""),
        "emotion": "neutral",
    })
    for segment, passage in zip(answer["segments"], passages):
        late = passage["start"] * 1.08 + 4.0
        segment["timestamp"] = f"{int(late // 60):02d}:{int(late % 60):02d}"
    return answer


def blocked_models_env(folder: Path) -> dict[str, str]:
    (folder / "sitecustomize.py").write_text(
        "import sys\n" + "".join(f"sys.modules[{n!r}] = None\n" for n in REQUIRED_PACKAGES if n != "numpy"))
    return {"PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])}


def run(path: Path, passages: list[dict], *, timeline: bool, local: bool, work: Path) -> tuple[list[float], float, list[str]]:
    transcript = transcript_of(passages)
    with FakeGemini() as server:
        server.script(Answer(drifted_answer(passages, transcript)))
        server.transcribe.script(transcript)
        server.transcribe.access = timeline
        env = {**os.environ, "GEMINI_API_KEY": server.api_key, "GOOGLE_GEMINI_BASE_URL": server.base_url,
               "RUNPIPE_USER_PATH": str(work / "user")}
        if not local:
            (work / "site").mkdir(exist_ok=True)
            env.update(blocked_models_env(work / "site"))
        began = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-m", "runpipe", str(ROOT / "pipelines" / "podcast.yaml"), str(path), "--backend", "gemini",
             "-o", str(work / "out"), "--json", "--no-progress", "--force"],
            env=env, capture_output=True, text=True, timeout=3600,
        )
        seconds = time.perf_counter() - began
    if out.returncode != 0:
        raise SystemExit(f"{path.name}: runpipe failed: {out.stderr[-2000:]}")
    result = json.loads((work / "out" / f"{path.stem}.json").read_text())
    starts = [s["start"] for s in result["segments"]]
    if len(starts) != len(passages):
        raise SystemExit(f"{path.name}: {len(starts)} segments for {len(passages)} passages")
    return [abs(s - p["start"]) for s, p in zip(starts, passages)], seconds, result["notes"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-whisper", action="store_true", help="skip the fallback that re-times with the offline models")
    parser.add_argument("--devaudio", type=Path, default=DEFAULT_DEVAUDIO, help="folder with MANIFEST.json (../shared/devaudio)")
    args = parser.parse_args()
    devaudio = args.devaudio.resolve()
    manifest = json.loads((devaudio / "MANIFEST.json").read_text())
    files = [f for f in manifest["files"] if f["path"].startswith("composed/")]
    setups = [("transcribe timeline", True, False), ("transcribe timeline", True, True),
              ("fallback: general model", False, False), ("fallback: general model", False, True)]
    if args.no_whisper:
        setups = setups[:3]
    print(f"{'set-up':26} {'local models':13} {'passages':>8} {'<=0.5 s':>8} {'median s':>9} {'p90 s':>7} {'wall s':>7}")
    for name, timeline, local in setups:
        errors, wall, notes = [], 0.0, set()
        for entry in files:
            with tempfile.TemporaryDirectory() as work:
                found, seconds, said = run(devaudio / entry["path"], entry["ground_truth"]["passages"], timeline=timeline,
                                           local=local, work=Path(work))
            errors += found
            wall += seconds
            notes.update(said)
        errors.sort()
        within = sum(e <= 0.5 for e in errors) / len(errors)
        p90 = errors[min(len(errors) - 1, int(0.9 * len(errors)))]
        print(f"{name:26} {'installed' if local else 'blocked':13} {len(errors):8d} {within:8.1%} "
              f"{statistics.median(errors):9.3f} {p90:7.3f} {wall:7.1f}")
        for note in sorted(notes):
            print(f"    note: {note[:150]}")


if __name__ == "__main__":
    main()
