"""Word error rate and diarization error rate of the offline backend on a folder of
recordings with reference answers.

    python bench/eval.py ../shared/audio

The folder holds a ``MANIFEST.json``: ``{"files": [{"id", "path", "ground_truth": {...}}]}``
where ``ground_truth`` may give ``transcript`` (or ``transcript_en_part`` for the English
part of a mixed recording), ``speaker_turns`` ``[{start, end, speaker}]`` and ``language``.
Files with neither transcript nor turns are listed but not scored.

WER: jiwer on lower-cased text with punctuation removed; for ``transcript_en_part`` only the
English segments of the hypothesis are scored. DER: frame-based (10 ms), a 0.25 s collar
around every reference boundary is not scored, overlapping reference speech counts each
speaker, and hypothesis speakers are mapped to reference speakers by the optimal
(Hungarian) assignment. Overall figures weight files by reference words / scored time.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FRAME = 0.01
COLLAR = 0.25


def normalise(text: str) -> str:
    return " ".join(re.findall(r"[\w']+", text.lower()))


@dataclass(frozen=True, slots=True)
class Turn:
    start: float
    end: float
    speaker: str


def _activity(turns: list[Turn], speakers: list[str], frames: int) -> np.ndarray:
    matrix = np.zeros((len(speakers), frames), dtype=bool)
    index = {s: i for i, s in enumerate(speakers)}
    for turn in turns:
        matrix[index[turn.speaker], int(round(turn.start / FRAME)) : int(round(turn.end / FRAME))] = True
    return matrix


def diarization_error(reference: list[Turn], hypothesis: list[Turn], duration: float) -> tuple[float, float]:
    """(errors, scored) in seconds: missed + false alarm + confusion over reference speech time."""
    from scipy.optimize import linear_sum_assignment

    frames = int(np.ceil(duration / FRAME)) + 1
    ref_speakers = sorted({t.speaker for t in reference})
    hyp_speakers = sorted({t.speaker for t in hypothesis})
    ref = _activity(reference, ref_speakers, frames)
    hyp = _activity(hypothesis, hyp_speakers, frames)
    scored = np.ones(frames, dtype=bool)
    for turn in reference:
        for edge in (turn.start, turn.end):
            scored[max(0, int(round((edge - COLLAR) / FRAME))) : int(round((edge + COLLAR) / FRAME))] = False
    ref, hyp = ref[:, scored], hyp[:, scored]
    # Optimal one-to-one mapping maximising jointly active frames.
    overlap = ref.astype(np.int64) @ hyp.T.astype(np.int64) if hyp_speakers else np.zeros((len(ref_speakers), 0))
    mapped_hits = 0
    if overlap.size:
        rows, cols = linear_sum_assignment(-overlap)
        mapped = np.zeros_like(ref)
        for r, c in zip(rows, cols):
            mapped[r] = hyp[c]
        mapped_hits = int((ref & mapped).sum())
    ref_count, hyp_count = ref.sum(axis=0), hyp.sum(axis=0)
    # Standard DER per frame: max(ref, hyp) - correct, summed; divided by reference speech.
    errors = int(np.maximum(ref_count, hyp_count).sum()) - mapped_hits
    return errors * FRAME, float(ref_count.sum()) * FRAME


def evaluate(folder: Path) -> None:
    import jiwer

    from runpipe.model import AudioFile, MediaItem, Task
    from runpipe.plugins.local.backend import LocalBackend

    manifest = json.loads((folder / "MANIFEST.json").read_text())
    backend = LocalBackend({})
    backend.warm_up()
    total_words = total_word_errors = 0.0
    total_der_errors = total_der_scored = 0.0
    print(f"{'file':<32} {'audio':>6} {'time':>6} {'WER':>6} {'DER':>6} {'spk ref/hyp':>11} languages")
    for entry in manifest["files"]:
        truth = entry.get("ground_truth", {})
        path = folder / entry["path"]
        audio = AudioFile(MediaItem(str(path), "file", path.name), path, "audio/*", None, entry["id"])
        started = time.perf_counter()
        result = backend.analyze(audio, Task("transcript", "", "transcript", {}))
        elapsed = time.perf_counter() - started
        segments = result.data["segments"]
        wer = der = None
        reference_text, hypothesis_segments = truth.get("transcript"), segments
        if reference_text is None and truth.get("transcript_en_part"):
            reference_text = truth["transcript_en_part"]
            hypothesis_segments = [s for s in segments if s["language_code"] == "en"]
        if reference_text:
            reference = normalise(reference_text)
            hypothesis = normalise(" ".join(s["content"] for s in hypothesis_segments))
            wer = jiwer.wer(reference, hypothesis) if hypothesis else 1.0
            words = len(reference.split())
            total_words += words
            total_word_errors += wer * words
        ref_turns = [Turn(t["start"], t["end"], t["speaker"]) for t in truth.get("speaker_turns", [])]
        if ref_turns:
            hyp_turns = [Turn(s["start"], s["end"], s["speaker"]) for s in segments]
            errors, scored = diarization_error(ref_turns, hyp_turns, entry.get("duration_s") or max(t.end for t in ref_turns))
            der = errors / scored if scored else None
            total_der_errors += errors
            total_der_scored += scored
        speakers = f"{len({t.speaker for t in ref_turns}) or '-'}/{len({s['speaker'] for s in segments})}"
        languages = ",".join(dict.fromkeys(s["language_code"] for s in segments)) or "-"
        print(
            f"{entry['id'][:32]:<32} {entry.get('duration_s', 0):>5.0f}s {elapsed:>5.1f}s "
            f"{_pct(wer):>6} {_pct(der):>6} {speakers:>11} {languages}"
            + ("" if wer is not None or der is not None else "   (no transcript or turns to score)"),
            flush=True,
        )
    overall_wer = total_word_errors / total_words if total_words else None
    overall_der = total_der_errors / total_der_scored if total_der_scored else None
    print(f"{'overall':<32} {'':>6} {'':>6} {_pct(overall_wer):>6} {_pct(overall_der):>6}")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="folder with MANIFEST.json and the audio it lists")
    evaluate(parser.parse_args().folder)


if __name__ == "__main__":
    main()
