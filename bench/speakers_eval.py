"""Speaker labelling alone, on transcripts a full run already made: per-file speaker count
and DER of the offline speaker step, without running Whisper again.

    python bench/eval.py ../shared/devaudio --capability diarization --side runpipe --save /tmp/rp
    python bench/speakers_eval.py ../shared/devaudio /tmp/rp/runpipe.json

Each file's speech regions come from the same VAD windows the backend uses; its words (with
their times) come from the saved run. The backend's speaker step (``split_by_voice`` per
window, ``name_speakers`` over the file, per channel where each channel has its own talker)
then labels them afresh. The table prints, per file,
the true/found speaker count and DER of the saved run and of the new labels, and two bounds:
everything one speaker, and each segment given the true speaker it overlaps most (the best
these segments allow). Files the manifest gives one speaker and no turns (over 10 s) are
counted too, without DER. ``--set NAME=VALUE`` changes a ``DiarizationSettings`` field;
``--leave-one-out NAME=V1,V2`` picks the value with the best pooled DER on all files but one
and scores it on that one, for every file in turn.

The shipped sample is a pair too: ``sample RUN_JSON``, where RUN_JSON is what
``python bench/eval.py --child runpipe JOBS`` prints for a job list naming only the sample.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("runpipe_eval", HERE / "eval.py")
evaluation = importlib.util.module_from_spec(_spec)
sys.modules["runpipe_eval"] = evaluation
_spec.loader.exec_module(evaluation)

SAMPLE = HERE.parent / "samples" / "podcast_sample.ogg"


def _sample_reference():
    turns = json.loads(SAMPLE.with_suffix(".json").read_text())["turns"]
    return evaluation.Reference(
        id="podcast_sample (shipped)",
        path=SAMPLE,
        duration=turns[-1]["end"],
        capabilities=frozenset({"diarization"}),
        passages=(),
        composed=False,
        exact_text=True,
        turns=tuple(evaluation.Turn(t["start"], t["end"], t["speaker"]) for t in turns),
        speaker_count=len({t["speaker"] for t in turns}),
    )


def _one_voice(folder: Path, reference):
    """A file the manifest gives one speaker but no turns: its count must come out 1 (no DER)."""
    manifest = json.loads((folder / "MANIFEST.json").read_text(encoding="utf-8"))
    truth = next(f for f in manifest["files"] if f["id"] == reference.id)["ground_truth"]
    if not isinstance(truth.get("speaker"), str):
        return None
    return replace(reference, speaker_count=1)


def _segments(saved: list[dict]):
    from runpipe.plugins.local.transcribe import RecognizedSegment, RecognizedWord

    return [
        RecognizedSegment(
            s["start"],
            s["end"],
            s["text"],
            s.get("language") or "",
            1.0,
            tuple(RecognizedWord(w.get("text") or w.get("word", ""), w["start"], w["end"], 1.0) for w in s.get("words", ())),
        )
        for s in saved
        if s.get("end") is not None
    ]


class Prepared:
    """A file's VAD windows and recognised segments, embedded once per embedder setting. A
    file with a talker per channel has windows per channel (as the backend analyses it), and
    each saved segment goes to the channel whose own speech it overlaps most."""

    def __init__(self, reference, saved_segments: list[dict]):
        from runpipe.plugins.local.audio import speech_overlap, stream_windows
        from runpipe.plugins.local.channels import ChannelSettings, talker_channels

        self.reference = reference
        self.saved = saved_segments
        talkers = talker_channels(reference.path, 0.0, None)
        channels = [None] if talkers is None else list(range(talkers.count))
        self.streams = []  # per channel: [(window, own regions)]
        for channel in channels:
            windows = list(stream_windows(reference.path, channel=channel))
            regions = [list(w.regions) if talkers is None else talkers.own_regions(channel, list(w.regions), w.offset, ChannelSettings()) for w in windows]
            self.streams.append(list(zip(windows, regions)))
        heard = [[(w.offset + s, w.offset + e) for w, regions in stream for s, e in regions] for stream in self.streams]
        self.stream_segments = [[[] for _ in stream] for stream in self.streams]
        for segment in _segments(saved_segments):
            index = max(range(len(heard)), key=lambda i: speech_overlap(segment.start, segment.end, heard[i]))
            for number, (window, _) in enumerate(self.streams[index]):
                if window.offset <= segment.start < window.offset + window.duration:
                    self.stream_segments[index][number].append(segment.shifted(-window.offset))

    def label(self, embedder, settings) -> list[dict]:
        """The segments as the backend's speaker step labels them (split where the voice changes)."""
        from runpipe.plugins.local.diarize import split_by_voice
        from runpipe.plugins.local.recognize import Piece, RecognitionSettings, _name_speakers

        streams = []
        for stream, stream_segments in zip(self.streams, self.stream_segments):
            pieces, embeddings = [], []
            for (window, regions), window_segments in zip(stream, stream_segments):
                split, heard = split_by_voice(window.samples, regions, window_segments, embedder, settings)
                pieces += [Piece(s.shifted(window.offset), "") for s in split]
                embeddings += [e.shifted(window.offset) for e in heard]
            streams.append((pieces, embeddings))
        named, _ = _name_speakers(streams, RecognitionSettings(diarization=settings))
        return [{"start": p.segment.start, "end": p.segment.end, "speaker": p.speaker} for p in named]


def _one_speaker(segments: list[dict]) -> list[dict]:
    return [{**s, "speaker": "one"} for s in segments]


def _oracle(reference, segments: list[dict]) -> list[dict]:
    """Each segment labelled with the reference speaker it overlaps most: the best DER these
    segment bounds allow (what is left is missed speech, false alarm and overlap)."""

    if not reference.turns:
        return segments

    def truest(s):
        overlaps = {}
        for turn in reference.turns:
            overlaps[turn.speaker] = overlaps.get(turn.speaker, 0.0) + evaluation._overlap(s["start"], s["end"], turn.start, turn.end)
        return max(overlaps, key=overlaps.get)

    return [{**s, "speaker": truest(s)} for s in segments]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="pairs FOLDER RUNPIPE_JSON (a MANIFEST folder and eval.py --save's runpipe.json); "
                        "'sample SAMPLE_JSON' for the shipped sample's saved result")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a DiarizationSettings field for the new run")
    parser.add_argument("--leave-one-out", metavar="NAME=V1,V2,...", help="choose NAME among the values on the other files")
    args = parser.parse_args()

    from runpipe.plugins.local import models
    from runpipe.plugins.local.diarize import DiarizationSettings

    def parse(value: str):
        for kind in (int, float):
            try:
                return kind(value)
            except ValueError:
                pass
        return {"true": True, "false": False}.get(value.lower(), value)

    settings = DiarizationSettings()
    for item in args.set:
        name, value = item.split("=", 1)
        settings = replace(settings, **{name: parse(value)})

    prepared: list[Prepared] = []
    pairs = list(zip(args.runs[::2], args.runs[1::2]))
    for folder, saved_path in pairs:
        saved = {r["id"]: r for r in json.loads(Path(saved_path).read_text())["results"]}
        if folder == "sample":
            references = [_sample_reference()]
            saved = {references[0].id: next(iter(saved.values()))}
        else:
            references = [r for r in evaluation.load_references(Path(folder), [], []) if r.id in saved]
            references = [_one_voice(Path(folder), r) if not r.turns else r for r in references]
            references = [r for r in references if r is not None and (r.turns or r.duration > 10)]
            references = [r for r in references if r is not None]
        for reference in references:
            record = saved.get(reference.id)
            if record and record.get("segments"):
                prepared.append(Prepared(reference, record["segments"]))

    embedder = models.speaker_embedder()
    print(f"settings: {settings}")
    print(f"{'file':<36} {'spk saved':>9} {'DER saved':>9} | {'spk new':>7} {'DER new':>8} | {'DER one spk':>11} {'DER oracle':>10}")
    totals = {"saved": [0.0, 0.0, 0], "new": [0.0, 0.0, 0], "one": [0.0, 0.0, 0], "oracle": [0.0, 0.0, 0]}
    for item in prepared:
        ref = item.reference
        cells = {}
        new = item.label(embedder, settings)
        for key, segments in (("saved", item.saved), ("new", new), ("one", _one_speaker(item.saved)), ("oracle", _oracle(ref, new))):
            found, errors, scored = evaluation.score_speakers(ref, segments)
            totals[key][0] += errors or 0.0
            totals[key][1] += scored or 0.0
            totals[key][2] += found == ref.speaker_count
            cells[key] = (f"{ref.speaker_count}/{found}", evaluation._pct(errors / scored) if scored else "-")
        print(
            f"{ref.id[:36]:<36} {cells['saved'][0]:>9} {cells['saved'][1]:>9} | {cells['new'][0]:>7} {cells['new'][1]:>8} | {cells['one'][1]:>11} {cells['oracle'][1]:>10}",
            flush=True,
        )
    for key in totals:
        errors, scored, right = totals[key]
        print(f"{key:<6} pooled DER {evaluation._pct(errors / scored) if scored else '-':>7}, speaker count right {right}/{len(prepared)}")

    if args.leave_one_out:
        name, values = args.leave_one_out.split("=", 1)
        candidates = [parse(v) for v in values.split(",")]
        table = np.zeros((len(candidates), len(prepared), 2))  # (errors, scored)
        found = np.zeros((len(candidates), len(prepared)), dtype=int)
        for c, value in enumerate(candidates):
            chosen = replace(settings, **{name: value})
            for f, item in enumerate(prepared):
                found[c, f], errors, scored = evaluation.score_speakers(item.reference, item.label(embedder, chosen))
                table[c, f] = (errors or 0.0, scored or 0.0)
        print(f"\nleave-one-out over {name} in {candidates}")
        held_errors = held_scored = 0.0
        held_right = 0
        for f, item in enumerate(prepared):
            # Picked by pooled DER on the others, then by how many of the others get their count right.
            others = np.delete(table, f, axis=1).sum(axis=1)
            right = (np.delete(found, f, axis=1) == np.array([p.reference.speaker_count for i, p in enumerate(prepared) if i != f])).sum(axis=1)
            best = min(range(len(candidates)), key=lambda c: (round(others[c, 0] / max(others[c, 1], 1e-9), 4), -right[c]))
            errors, scored = table[best, f]
            held_errors += errors
            held_scored += scored
            held_right += found[best, f] == item.reference.speaker_count
            der = evaluation._pct(errors / scored) if scored else "-"
            print(f"{item.reference.id[:36]:<36} picked {name}={candidates[best]}  spk {item.reference.speaker_count}/{found[best, f]}  DER {der}")
        print(f"held-out pooled DER {evaluation._pct(held_errors / held_scored) if held_scored else '-'}, speaker count right {held_right}/{len(prepared)}")

if __name__ == "__main__":
    main()
