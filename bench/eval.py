"""Score runpipe's offline results beside a bare faster-whisper run on a folder of recordings
with reference answers, in one run.

    python bench/eval.py ../shared/devaudio
    python bench/eval.py ../shared/devaudio --capability emotion --capability sound_events
    python bench/eval.py ../shared/devaudio --only two_speaker_dialogue --only conversation/
    python bench/eval.py ../shared/audio --side runpipe --save /tmp/eval-run   # keep raw results
    python bench/eval.py ../shared/devaudio --load /tmp/eval-run               # rescore them

The folder holds a ``MANIFEST.json`` (``{"files": [{"id", "path", "duration_s", "capabilities",
"ground_truth"}]}``, as ``../shared/devaudio/README.md`` describes).

**Runpipe** is the built-in ``podcast`` pipeline (normalize, offline analysis, retime,
speakers) with ``--backend local``, on every file that has a speech capability, and the
``describe`` pipeline on files with ``sound_events``. **Bare** is what a faster-whisper user
writes with the same Whisper model: ``WhisperModel.transcribe(vad_filter=True,
word_timestamps=True, beam_size=5, condition_on_previous_text=False)``. Each side runs in its
own process, one after the other, so peak RSS is its own and the two never share the cores.

Scores:

* **WER**: lower-cased, punctuation removed, English numbers spelled out on both sides
  ("6 × 10 = 60" and "six times ten equals sixty" compare equal); CER for zh/ja. Composed files
  are scored passage by passage (each recognised word, or segment when words are not exported,
  goes to the passage it overlaps most, else the nearest one) and pooled. References whose
  quality is not exact are marked ``~``. Where the reference is empty (laughter, noise) the
  column shows the words invented (``+N``).
* **lost**: bare words runpipe lacks / bare words counted, by aligning the two sides' words
  passage by passage (see :func:`lost_words`; bare words over non-speech, stock-phrase
  segments and words in a passage of another language than bare decoded are not counted).
  Runpipe's words should be a superset of the bare engine's: every lost word is listed.
* **passages** (files with passages): right language / right language and words (passage
  error rate at most 50 %), counted per manifest passage from the segment overlapping it most.
  Bare faster-whisper has one language per file. **start**: median |first recognised start -
  reference onset| over passages (and speech spans of single clips).
* **spk / DER**: speaker count reference/found, and frame DER (10 ms, 0.25 s collar, overlap
  counts each speaker, optimal speaker mapping) where reference turns exist.
* **emotion**: the clip's emotion (segment emotions weighted by duration) against the acted
  label, named in the schema's words (anger -> angry, happiness -> happy, sadness -> sad);
  compared with always answering the corpus' most frequent label. A missing or null emotion
  counts as "not estimated".
* **sound**: the description's longest non-silent event must name the clip's label (see
  ``SOUND_WORDS``); "noise" is right when no speech, singing or music is claimed.
* **time**: seconds per file, RTF (seconds / audio seconds), peak RSS of each side's process,
  and the runpipe/bare time ratio over the files both ran.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np

FRAME = 0.01
COLLAR = 0.25
NO_SPACE_LANGUAGES = frozenset({"zh", "ja"})
SPEECH_CAPABILITIES = frozenset({"transcription", "language_id", "diarization", "emotion", "timing", "translation"})
MAX_PASSAGE_ERROR = 0.5  # a passage with more errors than this has not got its words right
EMOTION_WORDS = {"anger": "angry", "happiness": "happy", "sadness": "sad"}
#: Words that name each sound label in a description (any one is enough).
SOUND_WORDS = {
    "thunderstorm": ("thunder", "storm", "rain"),
    "dog": ("dog", "bark", "howl", "whimper", "whine"),
    "music": ("music", "singing", "song", "instrument"),
    "laughter": ("laugh", "giggl", "chuckl"),
    "whale": ("whale",),
}
CLAIMS = ("speech", "singing", "music")  # what "noise" must not be called


# ---------------------------------------------------------------------------
# References
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Passage:
    start: float
    end: float
    language: str | None
    text: str | None  # None: only the language is known
    onset_known: bool = True  # start is where speech begins (scored as start error)


@dataclass(frozen=True, slots=True)
class Turn:
    start: float
    end: float
    speaker: str


@dataclass(frozen=True, slots=True)
class Reference:
    id: str
    path: Path
    duration: float
    capabilities: frozenset[str]
    passages: tuple[Passage, ...]
    composed: bool  # passages are placed in time (scored one by one), else one clip
    exact_text: bool
    turns: tuple[Turn, ...] = ()
    speaker_count: int | None = None
    scored_region: tuple[float, float] | None = None
    emotion: str | None = None
    sound_label: str | None = None
    keywords: tuple[str, ...] = ()

    @property
    def speech(self) -> bool:
        return bool(self.capabilities & SPEECH_CAPABILITIES)


def _reference(folder: Path, entry: dict) -> Reference:
    truth = entry.get("ground_truth", {})
    duration = float(entry.get("duration_s") or 0.0)
    language = truth.get("language") if truth.get("language") != "mixed" else None
    quality = str(truth.get("transcript_quality", "exact"))
    composed = False
    if truth.get("passages"):
        passages = tuple(Passage(p["start"], p["end"], p.get("language"), p.get("text")) for p in truth["passages"])
        composed = True
        quality = "exact" if all(str(p.get("text_quality", "exact")).startswith(("exact", "high")) for p in truth["passages"]) else "approximate"
    elif truth.get("language_segments"):
        english = truth.get("transcript_en_part")
        # Their bounds come from pauses, not speech onsets: no start error is scored on them.
        passages = tuple(
            Passage(s["start"], s["end"], s["language"], english if s["language"] == "en" else None, onset_known=False)
            for s in truth["language_segments"]
        )
        composed = True
    elif "transcript" in truth or language:
        span = truth.get("speech_span") or {}
        passages = (Passage(span.get("start", 0.0), span.get("end", duration), language, truth.get("transcript"), bool(span)),)
    else:
        passages = ()
    turns = tuple(Turn(t["start"], t["end"], t["speaker"]) for t in truth.get("speaker_turns", ()))
    count = truth.get("num_speakers") or (len({t.speaker for t in turns}) or None)
    if count is None and truth.get("speaker") and "diarization" in entry.get("capabilities", ()):
        count = 1
    region = truth.get("scored_region")
    emotion = truth.get("emotion")
    return Reference(
        id=entry["id"],
        path=folder / entry["path"],
        duration=duration,
        capabilities=frozenset(entry.get("capabilities", ())),
        passages=passages,
        composed=composed,
        exact_text=quality.startswith(("exact", "high", "upstream test reference; the upstream test passes at WER <= 0.025")),
        turns=turns,
        speaker_count=count,
        scored_region=(region["start"], region["end"]) if region else None,
        emotion=EMOTION_WORDS.get(emotion, emotion) if emotion else None,
        sound_label=truth.get("sound_label") or truth.get("sound_event"),
        keywords=tuple(truth.get("keywords_in_order", ())),
    )


def load_references(folder: Path, only: list[str], capabilities: list[str]) -> list[Reference]:
    manifest = json.loads((folder / "MANIFEST.json").read_text(encoding="utf-8"))
    references = [_reference(folder, entry) for entry in manifest["files"]]

    def chosen(ref: Reference) -> bool:
        names = (ref.id, str(ref.path.relative_to(folder)))
        if only and not any(p in n or fnmatch.fnmatch(n, p) for p in only for n in names):
            return False
        return not capabilities or bool(ref.capabilities & set(capabilities))

    return [ref for ref in references if chosen(ref)]


# ---------------------------------------------------------------------------
# The two runs (each in a child process)
# ---------------------------------------------------------------------------


def _peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_bare(jobs: list[dict]) -> dict:
    from faster_whisper.audio import decode_audio

    from runpipe.plugins.local.models import whisper_model

    model = whisper_model().model
    results = []
    for job in jobs:
        started = time.perf_counter()
        segments, info = model.transcribe(
            decode_audio(job["path"]), beam_size=5, vad_filter=True, word_timestamps=True, condition_on_previous_text=False
        )
        pieces = [
            {
                "start": s.start,
                "end": s.end,
                "text": s.text.strip(),
                "language": info.language,
                "words": [{"start": w.start, "end": w.end, "text": w.word} for w in (s.words or ())],
            }
            for s in segments
        ]
        results.append({"id": job["id"], "seconds": time.perf_counter() - started, "segments": pieces})
    return {"results": results, "peak_rss_mib": _peak_rss_mib()}


def _pipeline(engine, name: str, output_dir: Path):
    """A built-in pipeline as shipped, exporting JSON only, into ``output_dir``."""
    import yaml

    from runpipe.pipeline.loader import resolve_pipeline_path

    data = yaml.safe_load(resolve_pipeline_path(name).read_text(encoding="utf-8"))
    data["stages"]["export"] = {"formats": ["json"], "output_dir": str(output_dir)}
    return engine.load_dict(data)


def run_runpipe(jobs: list[dict]) -> dict:
    from runpipe.engine import Engine
    from runpipe.plugins.local.backend import LocalBackend
    from runpipe.serialize import document_to_dict

    results = []
    with tempfile.TemporaryDirectory() as tmp, Engine(load_entrypoints=False, store_path=Path(tmp) / "runs.sqlite") as engine:
        LocalBackend({}).warm_up()  # model loading is not the per-file cost
        pipelines = {name: _pipeline(engine, name, Path(tmp) / "out") for name in ("podcast", "describe")}
        for job in jobs:
            record: dict[str, Any] = {"id": job["id"], "seconds": None, "segments": None, "events": None}
            for name, wanted in (("podcast", job["speech"]), ("describe", job["sounds"])):
                if not wanted:
                    continue
                started = time.perf_counter()
                run = engine.run(pipelines[name], [job["path"]], backend="local", force=True)
                elapsed = time.perf_counter() - started
                result = run.inputs[0]
                if result.status != "done":
                    record["error"] = f"{name}: {result.error}"
                    continue
                document = document_to_dict(result.documents[0])
                if name == "podcast":
                    record["seconds"] = elapsed
                    record["segments"] = [
                        {**s, "text": s["content"], "language": s.get("language_code")} for s in document.get("segments", ())
                    ]
                    record["provenance"] = document.get("provenance", {})
                else:
                    record["describe_seconds"] = elapsed
                    record["events"] = document.get("events", [])
                    record["description"] = document.get("description", "")
            results.append(record)
    return {"results": results, "peak_rss_mib": _peak_rss_mib()}


def run_side(side: str, references: list[Reference]) -> dict:
    jobs = [
        {"id": r.id, "path": str(r.path), "speech": r.speech, "sounds": "sound_events" in r.capabilities}
        for r in references
        if r.speech or (side == "runpipe" and "sound_events" in r.capabilities)
    ]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(jobs, handle)
    try:
        completed = subprocess.run([sys.executable, __file__, "--child", side, handle.name], capture_output=True, text=True)
    finally:
        Path(handle.name).unlink()
    if completed.returncode:
        raise SystemExit(f"the {side} run failed:\n{completed.stderr[-4000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------
# Text scoring
# ---------------------------------------------------------------------------

_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred"))
_ORDINAL = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth", "nine": "ninth", "twelve": "twelfth"}
_SYMBOLS = {"%": " percent ", "×": " times ", "=": " equals ", "+": " plus ", "&": " and "}


def spell_number(value: int) -> str:
    """English words for a non-negative integer (below a trillion)."""
    if value < 20:
        return _ONES[value]
    if value < 100:
        tens, ones = divmod(value, 10)
        return _TENS[tens] + (f" {_ONES[ones]}" if ones else "")
    for size, name in _SCALES:
        if value >= size:
            high, rest = divmod(value, size)
            return f"{spell_number(high)} {name}" + (f" {spell_number(rest)}" if rest else "")
    raise AssertionError(value)


def _spell_ordinal(number: str) -> str:
    words = spell_number(int(number)).split()
    last = words[-1]
    words[-1] = _ORDINAL.get(last) or (last[:-1] + "ieth" if last.endswith("y") else last + "th")
    return " ".join(words)


def _spell_english_numbers(text: str) -> str:
    text = re.sub(r"(?<=\d)[,.](?=\d{3}\b)", "", text)  # 600,000 -> 600000
    for symbol, words in _SYMBOLS.items():
        text = text.replace(symbol, words)
    text = re.sub(r"\b(\d+)(st|nd|rd|th)\b", lambda m: _spell_ordinal(m.group(1)), text)
    text = re.sub(r"\b(\d+)\.(\d+)\b", lambda m: f"{spell_number(int(m.group(1)))} point {' '.join(_ONES[int(d)] for d in m.group(2))}", text)
    return re.sub(r"\d+", lambda m: spell_number(int(m.group(0))) if len(m.group(0)) < 13 else m.group(0), text)


def tokens(text: str, language: str | None) -> list[str]:
    """What is compared: characters for zh/ja, else lower-cased words without punctuation."""
    text = text.lower()
    if language in NO_SPACE_LANGUAGES:
        return [c for c in text if c.isalnum()]
    if language in (None, "en"):
        text = _spell_english_numbers(text)
    return re.findall(r"[^\W_]+(?:'[^\W_]+)*", text)


def token_errors(reference: list[str], hypothesis: list[str]) -> int:
    import jiwer

    if not reference or not hypothesis:
        return len(reference) + len(hypothesis)
    out = jiwer.process_words(" ".join(reference), " ".join(hypothesis))
    return out.substitutions + out.deletions + out.insertions


# ---------------------------------------------------------------------------
# Scoring one file
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Piece:
    """A stretch of recognised text on the timeline, with its language."""

    start: float
    end: float
    text: str
    language: str | None


def _pieces(segments: list[dict]) -> list[Piece]:
    """Words where the result has them (finer placement), else whole segments."""
    pieces = []
    for s in segments:
        words = s.get("words") or ()
        if words:
            pieces += [Piece(w["start"], w["end"], w["text"], s.get("language")) for w in words]
        elif s.get("end") is not None:
            pieces.append(Piece(s["start"], s["end"], s["text"], s.get("language")))
    return pieces


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def _nearest_passage(piece: Piece, passages: tuple[Passage, ...]) -> int:
    overlaps = [_overlap(piece.start, piece.end, p.start, p.end) for p in passages]
    if max(overlaps) > 0:
        return int(np.argmax(overlaps))
    middle = (piece.start + piece.end) / 2
    return int(np.argmin([max(p.start - middle, middle - p.end) for p in passages]))


@dataclass
class PassageScore:
    errors: int = 0
    length: int = 0
    language_right: bool | None = None
    words_right: bool | None = None
    start_error: float | None = None


@dataclass
class FileScore:
    reference: Reference
    errors: int = 0
    length: int = 0
    passages: list[PassageScore] = field(default_factory=list)
    invented_words: int | None = None  # words recognised where the reference is empty
    keywords_found: int | None = None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.length if self.length else None

    @property
    def start_errors(self) -> list[float]:
        return [abs(p.start_error) for p in self.passages if p.start_error is not None]


def score_text(reference: Reference, segments: list[dict]) -> FileScore:
    score = FileScore(reference)
    pieces = _pieces(segments)
    passages = reference.passages
    if not passages:
        return score
    if reference.composed:
        groups: list[list[Piece]] = [[] for _ in passages]
        for piece in pieces:
            groups[_nearest_passage(piece, passages)].append(piece)
    else:
        groups = [pieces]
    for passage, group in zip(passages, groups):
        result = PassageScore()
        if group and passage.onset_known:
            result.start_error = min(p.start for p in group) - passage.start
        if passage.language and (reference.composed or "language_id" in reference.capabilities):
            heard: dict[str | None, float] = {}
            for piece in group:
                heard[piece.language] = heard.get(piece.language, 0.0) + max(piece.end - piece.start, 0.01)
            result.language_right = bool(heard) and max(heard, key=heard.get) == passage.language
        if passage.text is not None:
            ref_tokens = tokens(passage.text, passage.language)
            hyp_tokens = tokens(" ".join(p.text for p in group), passage.language)
            if ref_tokens:
                result.errors, result.length = token_errors(ref_tokens, hyp_tokens), len(ref_tokens)
                result.words_right = bool(result.language_right is not False) and result.errors / len(ref_tokens) <= MAX_PASSAGE_ERROR
            else:  # counted apart: a rate over no reference words means nothing
                score.invented_words = (score.invented_words or 0) + len(hyp_tokens)
        score.errors += result.errors
        score.length += result.length
        score.passages.append(result)
    if reference.keywords:
        heard_text = "".join(p.text for p in pieces).replace(" ", "")
        cursor = found = 0
        for keyword in reference.keywords:
            position = heard_text.find(keyword, cursor)
            if position >= 0:
                found, cursor = found + 1, position + len(keyword)
        score.keywords_found = found
    return score


@dataclass(frozen=True, slots=True)
class LostWords:
    """Bare words runpipe lacks, by alignment: ``lost`` of the ``counted`` bare words;
    ``in_reference`` of the lost are words of their passage's reference text (a lost word
    the reference does not have was one of bare's errors)."""

    lost: int
    counted: int
    in_reference: int = 0
    unreferenced: int = 0  # lost words of passages with no reference text to judge them by
    examples: tuple[str, ...] = ()


def lost_words(reference: Reference, bare_segments: list[dict], runpipe_segments: list[dict]) -> LostWords | None:
    """The bare engine's words that runpipe's result does not have (issue 17: runpipe's words
    must be a superset of the bare engine's, by alignment).

    Each side's words go to passages as in :func:`score_text`; per passage, the bare words
    are aligned to runpipe's (lower-cased, punctuation off, characters for zh/ja) and every
    bare word the alignment deletes is lost (a different spelling at the same place is a
    substitution, counted by WER, not a lost word). Not counted: bare words over non-speech
    (where the reference is empty, or outside every passage of a composed file), whole bare
    segments that are stock phrases (what the guards drop), and bare words in a passage of
    another language than the one the bare engine decoded (not words of that passage). On
    runpipe's side, words decoded in another language than their passage's are not its words
    either: the bare words they stand in for are lost."""
    import jiwer

    from runpipe.plugins.local.guards import is_stock_phrase

    passages = reference.passages
    if not passages:
        return None
    kept_bare = [s for s in bare_segments if not is_stock_phrase(s.get("text") or "")]
    groups = {}
    for side, segments in (("bare", kept_bare), ("rp", runpipe_segments)):
        groups[side] = [[] for _ in passages]
        for piece in _pieces(segments):
            index = _nearest_passage(piece, passages) if reference.composed else 0
            passage = passages[index]
            if passage.language is not None and piece.language != passage.language:
                continue  # not this passage's words (on runpipe's side: the bare words are lost)
            if side == "bare":
                middle = (piece.start + piece.end) / 2
                outside = reference.composed and not passage.start - 0.5 <= middle <= passage.end + 0.5
                if outside or (passage.text is not None and not passage.text.strip()):
                    continue
            groups[side][index].append(piece)
    counted = 0
    missing: list[tuple[str, bool | None]] = []  # (word, in the passage's reference; None: it has none)
    for passage, bare, runpipe in zip(passages, groups["bare"], groups["rp"]):
        language = passage.language or (bare[0].language if bare else None)
        bare_tokens = tokens(" ".join(p.text for p in bare), language)
        runpipe_tokens = tokens(" ".join(p.text for p in runpipe), language)
        known = set(tokens(passage.text, language)) if passage.text else None
        counted += len(bare_tokens)
        if not bare_tokens:
            continue
        deleted = range(len(bare_tokens)) if not runpipe_tokens else [
            index
            for chunk in jiwer.process_words(" ".join(bare_tokens), " ".join(runpipe_tokens)).alignments[0]
            if chunk.type == "delete"
            for index in range(chunk.ref_start_idx, chunk.ref_end_idx)
        ]
        missing += [(bare_tokens[index], None if known is None else bare_tokens[index] in known) for index in deleted]
    return LostWords(
        len(missing), counted, sum(right is True for _, right in missing), sum(right is None for _, right in missing),
        tuple(word for word, _ in missing),
    )


def _activity(turns: list[Turn], speakers: list[str], frames: int) -> np.ndarray:
    matrix = np.zeros((len(speakers), frames), dtype=bool)
    index = {s: i for i, s in enumerate(speakers)}
    for turn in turns:
        matrix[index[turn.speaker], max(0, int(round(turn.start / FRAME))) : max(0, int(round(turn.end / FRAME)))] = True
    return matrix


def diarization_error(reference: list[Turn], hypothesis: list[Turn], region: tuple[float, float]) -> tuple[float, float]:
    """(errors, scored) in seconds: missed + false alarm + confusion over reference speech time."""
    from scipy.optimize import linear_sum_assignment

    frames = int(np.ceil(region[1] / FRAME)) + 1
    ref_speakers = sorted({t.speaker for t in reference})
    hyp_speakers = sorted({t.speaker for t in hypothesis})
    ref = _activity(reference, ref_speakers, frames)
    hyp = _activity(hypothesis, hyp_speakers, frames)
    scored = np.zeros(frames, dtype=bool)
    scored[int(round(region[0] / FRAME)) : int(round(region[1] / FRAME))] = True
    for turn in reference:
        for edge in (turn.start, turn.end):
            scored[max(0, int(round((edge - COLLAR) / FRAME))) : int(round((edge + COLLAR) / FRAME))] = False
    ref, hyp = ref[:, scored], hyp[:, scored]
    mapped_hits = 0
    if hyp_speakers:
        overlap = ref.astype(np.int64) @ hyp.T.astype(np.int64)
        rows, cols = linear_sum_assignment(-overlap)
        mapped_hits = int(sum(int((ref[r] & hyp[c]).sum()) for r, c in zip(rows, cols)))
    ref_count, hyp_count = ref.sum(axis=0), hyp.sum(axis=0)
    errors = int(np.maximum(ref_count, hyp_count).sum()) - mapped_hits
    return errors * FRAME, float(ref_count.sum()) * FRAME


def score_speakers(reference: Reference, segments: list[dict]) -> tuple[int | None, float | None, float | None]:
    """(speakers found, DER errors, DER scored seconds) for files with a speaker reference."""
    if reference.speaker_count is None:
        return None, None, None
    region = reference.scored_region or (0.0, reference.duration or max((t.end for t in reference.turns), default=0.0))
    inside = [s for s in segments if s.get("speaker") and s.get("end") is not None and _overlap(s["start"], s["end"], *region) > 0]
    found = len({s["speaker"] for s in inside})
    if not reference.turns:
        return found, None, None
    errors, scored = diarization_error(list(reference.turns), [Turn(s["start"], s["end"], s["speaker"]) for s in inside], region)
    return found, errors, scored


def clip_emotion(segments: list[dict]) -> str | None:
    """The emotion heard longest (None when no segment carries an estimated emotion)."""
    weights: dict[str, float] = {}
    for s in segments:
        if isinstance(s.get("emotion"), str):
            weights[s["emotion"]] = weights.get(s["emotion"], 0.0) + (s["end"] or s["start"]) - s["start"]
    return max(weights, key=weights.get) if weights else None


def sound_verdict(label: str, events: list[dict]) -> tuple[str, bool]:
    """(what the description says most, whether that is right for ``label``)."""
    heard = [e for e in events if e.get("kind") != "silence"]
    if label == "noise":
        claimed = sorted({e["kind"] for e in heard if e.get("kind") in CLAIMS})
        return (", ".join(claimed) or "no speech/music"), not claimed
    if not heard:
        return "silence", False
    longest = max(heard, key=lambda e: (e.get("end") or 0) - (e.get("start") or 0))
    said = f"{longest.get('kind')}: {longest.get('description', '')}"
    return said, any(word in said.lower() for word in SOUND_WORDS.get(label, (label,)))


# ---------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _wer_cell(score: FileScore | None) -> str:
    if score is None:
        return "n/a"
    if score.keywords_found is not None:
        return f"kw {score.keywords_found}/{len(score.reference.keywords)}"
    if score.invented_words is not None and not score.length:
        return f"+{score.invented_words}"
    rate = score.error_rate
    if rate is None:
        return "-"
    return _pct(rate) + ("" if score.reference.exact_text else "~")


def _passage_cell(score: FileScore | None) -> str:
    if score is None or not score.reference.composed:
        return ""
    language = sum(bool(p.language_right) for p in score.passages)
    both = sum(bool(p.language_right) and p.words_right is not False for p in score.passages)
    return f"{language}/{both}/{len(score.passages)}"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def report(references: list[Reference], bare: dict | None, runpipe: dict | None) -> None:
    bare_by_id = {r["id"]: r for r in (bare or {}).get("results", [])}
    rp_by_id = {r["id"]: r for r in (runpipe or {}).get("results", [])}
    metric = "WER/CER"
    print(
        f"{'file':<34} {'audio':>6} | {metric + ' bare':>12} {metric + ' rp':>10} {'lost':>7} | {'passages b':>10} {'passages rp':>11} "
        f"{'start b':>7} {'start rp':>8} | {'spk':>5} {'DER':>6} | {'emotion ref>rp':<18} {'sound':<28} | {'t bare':>6} {'t rp':>6}"
    )
    totals = {"bare": [0, 0], "rp": [0, 0], "bare_en": [0, 0], "rp_en": [0, 0]}
    invented = {"bare": [0, 0], "rp": [0, 0]}  # words, clips
    passage_stats = {"bare": [0, 0, 0], "rp": [0, 0, 0]}
    starts = {"bare": [], "rp": []}
    language_files = {"bare": [0, 0], "rp": [0, 0]}
    speaker_right = speaker_files = 0
    der_errors = der_scored = 0.0
    emotions: list[tuple[str, str | None]] = []
    sounds: list[bool] = []
    english_worse: list[str] = []
    lost_total = [0, 0]
    lost_files: list[tuple[str, LostWords]] = []
    seconds = {"bare": 0.0, "rp": 0.0}
    audio = {"bare": 0.0, "rp": 0.0}
    paired = {"bare": 0.0, "rp": 0.0}  # files both sides ran, for the ratio
    failures = []
    for ref in references:
        b, r = bare_by_id.get(ref.id), rp_by_id.get(ref.id)
        if b is None and r is None:
            continue
        if r and r.get("error"):
            failures.append(f"{ref.id}: {r['error']}")
        b_score = score_text(ref, b["segments"]) if b and b.get("segments") is not None else None
        r_score = score_text(ref, r["segments"]) if r and r.get("segments") is not None else None
        for side, score in (("bare", b_score), ("rp", r_score)):
            if score is None:
                continue
            totals[side][0] += score.errors
            totals[side][1] += score.length
            if all(p.language in (None, "en") for p in ref.passages) and ref.exact_text:
                totals[side + "_en"][0] += score.errors
                totals[side + "_en"][1] += score.length
            starts[side] += score.start_errors
            if score.invented_words is not None:
                invented[side][0] += score.invented_words
                invented[side][1] += 1
            if ref.composed:
                stats = passage_stats[side]
                stats[0] += sum(bool(p.language_right) for p in score.passages)
                stats[1] += sum(bool(p.language_right) and p.words_right is not False for p in score.passages)
                stats[2] += len(score.passages)
            elif score.passages and score.passages[0].language_right is not None:
                language_files[side][0] += score.passages[0].language_right
                language_files[side][1] += 1
        if b_score and r_score and b_score.error_rate is not None and r_score.error_rate is not None and ref.exact_text:
            if all(p.language in (None, "en") for p in ref.passages) and r_score.error_rate > b_score.error_rate + 1e-9:
                english_worse.append(ref.id)
        lost_cell = ""
        if b and r and b.get("segments") is not None and r.get("segments") is not None:
            lost = lost_words(ref, b["segments"], r["segments"])
            if lost is not None and lost.counted:
                lost_cell = f"{lost.lost}/{lost.counted}"
                lost_total[0] += lost.lost
                lost_total[1] += lost.counted
                if lost.lost:
                    lost_files.append((ref.id, lost))
        speaker_cell = der_cell = ""
        if r and r.get("segments") is not None:
            found, errors, scored = score_speakers(ref, r["segments"])
            if found is not None:
                speaker_cell = f"{ref.speaker_count}/{found}"
                speaker_files += 1
                speaker_right += found == ref.speaker_count
            if errors is not None and scored:
                der_cell = _pct(errors / scored)
                der_errors += errors
                der_scored += scored
        emotion_cell = ""
        if ref.emotion and r and r.get("segments") is not None:
            said = clip_emotion(r["segments"])
            emotions.append((ref.emotion, said))
            emotion_cell = f"{ref.emotion}>{said or 'not estimated'}"
        sound_cell = ""
        if ref.sound_label and r and r.get("events") is not None:
            said, right = sound_verdict(ref.sound_label, r["events"])
            sounds.append(right)
            sound_cell = f"{'ok ' if right else 'NO '}{ref.sound_label}>{said}"[:28]
        for side, run in (("bare", b), ("rp", r)):
            if run and run.get("seconds") is not None:
                seconds[side] += run["seconds"]
                audio[side] += ref.duration
        if b and r and b.get("seconds") is not None and r.get("seconds") is not None:
            paired["bare"] += b["seconds"]
            paired["rp"] += r["seconds"]
        start_b = f"{median(b_score.start_errors):.2f}" if b_score and b_score.start_errors else "-"
        start_r = f"{median(r_score.start_errors):.2f}" if r_score and r_score.start_errors else "-"
        print(
            f"{ref.id[:34]:<34} {ref.duration:>5.0f}s | {_wer_cell(b_score):>12} {_wer_cell(r_score):>10} {lost_cell:>7} | "
            f"{_passage_cell(b_score):>10} {_passage_cell(r_score):>11} {start_b:>7} {start_r:>8} | {speaker_cell:>5} {der_cell:>6} | "
            f"{emotion_cell[:18]:<18} {sound_cell:<28} | {_seconds(b and b.get('seconds')):>6} {_seconds(r and r.get('seconds')):>6}",
            flush=True,
        )

    print()
    for label, key in (("WER/CER, all scored text", ""), ("WER, English files with exact text", "_en")):
        bare_total, rp_total = totals["bare" + key], totals["rp" + key]
        print(
            f"{label:<44} bare {_pct(bare_total[0] / bare_total[1] if bare_total[1] else None):>7}   "
            f"runpipe {_pct(rp_total[0] / rp_total[1] if rp_total[1] else None):>7}"
        )
    if invented["bare"][1] or invented["rp"][1]:
        print(
            f"{'words invented where the reference is empty':<44} bare {invented['bare'][0]} on {invented['bare'][1]} clip(s), "
            f"runpipe {invented['rp'][0]} on {invented['rp'][1]} clip(s)"
        )
    if english_worse:
        print(f"{'English files where runpipe is worse':<44} {len(english_worse)}: {', '.join(english_worse)}")
    if lost_total[1]:
        print(
            f"{'bare words runpipe lacks (by alignment)':<44} {lost_total[0]}/{lost_total[1]} on {len(lost_files)} file(s), "
            f"{sum(lost.in_reference for _, lost in lost_files)} of them in the reference, "
            f"{sum(lost.unreferenced for _, lost in lost_files)} where there is none"
        )
        for file_id, lost in lost_files:
            judged = f"{lost.in_reference} in the reference" if lost.unreferenced < lost.lost else "no reference text"
            print(f"{'':<4}{file_id}: {lost.lost} ({judged}): " + " ".join(lost.examples)[:160])
    for side, name in (("bare", "bare"), ("rp", "runpipe")):
        language, both, count = passage_stats[side]
        if count:
            print(f"{'composed passages, ' + name:<44} right language {language}/{count}, right language and words {both}/{count}")
    for side, name in (("bare", "bare"), ("rp", "runpipe")):
        right, count = language_files[side]
        if count:
            print(f"{'single clips in the right language, ' + name:<44} {right}/{count}")
    for side, name in (("bare", "bare"), ("rp", "runpipe")):
        if starts[side]:
            values = np.array(starts[side])
            print(
                f"{'start error, ' + name:<44} median {np.median(values):.3f} s, 90th pct {np.percentile(values, 90):.3f} s, "
                f"over 0.5 s: {int((values > 0.5).sum())}/{values.size}"
            )
    if speaker_files:
        print(f"{'speaker count right (runpipe)':<44} {speaker_right}/{speaker_files}")
    if der_scored:
        print(f"{'DER over files with turns (runpipe)':<44} {_pct(der_errors / der_scored)}")
    if emotions:
        labels = [label for label, _ in emotions]
        majority = max(sorted(set(labels)), key=labels.count)  # ties: the first label alphabetically
        right = sum(label == said for label, said in emotions)
        estimated = sum(said is not None for _, said in emotions)
        print(
            f"{'emotion accuracy (runpipe)':<44} {right}/{len(emotions)} ({_pct(right / len(emotions))}); "
            f"majority class '{majority}': {labels.count(majority)}/{len(emotions)} ({_pct(labels.count(majority) / len(emotions))}); "
            f"estimated on {estimated}/{len(emotions)}"
        )
    if sounds:
        print(f"{'sound label right (runpipe)':<44} {sum(sounds)}/{len(sounds)}")
    for side, name, data in (("bare", "bare", bare), ("rp", "runpipe", runpipe)):
        if data and audio[side]:
            print(
                f"{'time and memory, ' + name:<44} {seconds[side]:.1f} s on {audio[side]:.0f} s of audio, "
                f"RTF {seconds[side] / audio[side]:.3f}, peak RSS {data['peak_rss_mib']:.0f} MiB"
            )
    describe_seconds = sum(r.get("describe_seconds") or 0.0 for r in rp_by_id.values())
    if describe_seconds:
        print(f"{'describe pipeline, runpipe':<44} {describe_seconds:.1f} s")
    if paired["bare"]:
        print(f"{'runpipe / bare time (podcast pipeline)':<44} {paired['rp'] / paired['bare']:.2f}")
    for failure in failures:
        print(f"FAILED {failure}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, nargs="?", help="folder with MANIFEST.json and the audio it lists")
    parser.add_argument("--only", action="append", default=[], help="files whose id or path contains this (or matches this glob); repeatable")
    parser.add_argument("--capability", action="append", default=[], help="files with this capability (e.g. emotion, sound_events, diarization); repeatable")
    parser.add_argument("--side", choices=("both", "runpipe", "bare"), default="both", help="run only one side")
    parser.add_argument("--save", type=Path, help="also write each side's raw results to this folder")
    parser.add_argument("--load", type=Path, help="score the raw results saved in this folder instead of running")
    parser.add_argument("--child", nargs=2, metavar=("SIDE", "JOBS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        jobs = json.loads(Path(args.child[1]).read_text())
        print(json.dumps(run_bare(jobs) if args.child[0] == "bare" else run_runpipe(jobs)))
        return
    if args.folder is None:
        parser.error("give the folder with MANIFEST.json")
    references = load_references(args.folder, args.only, args.capability)
    if not references:
        raise SystemExit("no file in the manifest matches --only/--capability")
    results: dict[str, dict | None] = {"bare": None, "runpipe": None}
    for side in results:
        if args.load:
            saved = args.load / f"{side}.json"
            results[side] = json.loads(saved.read_text()) if saved.exists() else None
        elif args.side in ("both", side):
            results[side] = run_side(side, references)
            if args.save:
                args.save.mkdir(parents=True, exist_ok=True)
                (args.save / f"{side}.json").write_text(json.dumps(results[side], ensure_ascii=False))
    report(references, results["bare"], results["runpipe"])


if __name__ == "__main__":
    main()
