"""The scoring rules of bench/eval.py (the instrument every offline change is judged by)."""

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("jiwer")
_spec = importlib.util.spec_from_file_location("bench_eval", Path(__file__).resolve().parent.parent / "bench" / "eval.py")
bench_eval = importlib.util.module_from_spec(_spec)
sys.modules["bench_eval"] = bench_eval  # dataclasses look their module up while it loads
_spec.loader.exec_module(bench_eval)


def test_numbers_written_as_digits_or_words_compare_equal():
    spoken = bench_eval.tokens("The expression goes six times ten equals sixty, not six hundred thousand: a twelve percent chance.", "en")
    written = bench_eval.tokens("The expression goes 6 × 10 = 60 not 600,000 that gives us a 12% chance.", "en")
    assert bench_eval.token_errors(spoken, written) == 3  # only "that gives us" against "a"
    assert bench_eval.tokens("the 15th century", "en") == ["the", "fifteenth", "century"]
    assert bench_eval.spell_number(1961) == "one thousand nine hundred sixty one"


def test_chinese_and_japanese_are_scored_by_character():
    assert bench_eval.tokens("换一首歌。", "zh") == ["换", "一", "首", "歌"]
    assert bench_eval.token_errors(bench_eval.tokens("换一首歌", "zh"), bench_eval.tokens("快一首歌啊", "zh")) == 2


def test_diarization_error_maps_speakers_and_counts_confusion():
    Turn = bench_eval.Turn
    reference = [Turn(0, 10, "a"), Turn(10, 20, "b")]
    same = [Turn(0, 10, "Speaker 2"), Turn(10, 20, "Speaker 1")]  # names need not match
    errors, scored = bench_eval.diarization_error(reference, same, (0.0, 20.0))
    assert errors == pytest.approx(0.0) and scored == pytest.approx(19.0, abs=0.02)  # collars cut 1 s
    one_speaker = [Turn(0, 20, "Speaker 1")]
    errors, scored = bench_eval.diarization_error(reference, one_speaker, (0.0, 20.0))
    assert errors / scored == pytest.approx(9.5 / 19.0, abs=0.01)


def test_composed_passages_are_scored_one_by_one():
    reference = bench_eval.Reference(
        id="panel", path=Path("panel.mp3"), duration=10.0, capabilities=frozenset({"transcription", "language_id"}),
        passages=(bench_eval.Passage(1.0, 3.0, "en", "one two three"), bench_eval.Passage(5.0, 8.0, "de", "eins zwei drei")),
        composed=True, exact_text=True,
    )
    segments = [
        {"start": 1.1, "end": 2.9, "text": "One, two, three.", "language": "en"},
        {"start": 5.4, "end": 7.9, "text": "One, two, three.", "language": "en"},  # German heard as English
    ]
    score = bench_eval.score_text(reference, segments)
    assert [(p.language_right, p.words_right) for p in score.passages] == [(True, True), (False, False)]
    assert [round(p.start_error, 2) for p in score.passages] == [0.1, 0.4]
    assert (score.errors, score.length) == (3, 6)


def test_lost_words_are_bare_words_runpipe_lacks_over_speech():
    reference = bench_eval.Reference(
        id="panel", path=Path("panel.mp3"), duration=20.0, capabilities=frozenset({"transcription"}),
        passages=(bench_eval.Passage(1.0, 4.0, "en", "metal letters in the middle"), bench_eval.Passage(6.0, 9.0, "de", "eins zwei drei")),
        composed=True, exact_text=True,
    )
    bare = [
        {"start": 1.0, "end": 4.0, "text": "Metal letters in the middle.", "language": "en"},
        {"start": 6.0, "end": 9.0, "text": "Once fly dry.", "language": "en"},  # German decoded as English: not its words
        {"start": 14.0, "end": 15.0, "text": "Thank you.", "language": "en"},  # a stock phrase over non-speech
    ]
    runpipe = [{"start": 2.2, "end": 4.0, "text": "in the muddle", "language": "en"}]
    lost = bench_eval.lost_words(reference, bare, runpipe)
    # "middle" -> "muddle" is a substitution (WER counts it); the first two words are lost.
    assert (lost.lost, lost.counted, lost.in_reference) == (2, 5, 2) and lost.examples == ("metal", "letters")
    same = bench_eval.lost_words(reference, bare, bare[:1])
    assert (same.lost, same.counted) == (0, 5)
    # Words decoded in another language are not the passage's words: bare's are lost.
    elsewhere = bench_eval.lost_words(reference, bare, [{**bare[0], "text": "金属字母", "language": "zh"}])
    assert (elsewhere.lost, elsewhere.in_reference) == (5, 5)


def test_a_missing_emotion_is_not_estimated_and_noise_must_claim_nothing():
    assert bench_eval.clip_emotion([{"start": 0, "end": 2, "text": "x"}]) is None
    assert bench_eval.clip_emotion([{"start": 0, "end": 2, "emotion": "sad"}, {"start": 2, "end": 2.5, "emotion": "happy"}]) == "sad"
    assert bench_eval.sound_verdict("noise", [{"kind": "silence", "start": 0, "end": 1}]) == ("no speech/music", True)
    assert bench_eval.sound_verdict("dog", [{"kind": "sound", "description": "unidentified sound", "start": 0, "end": 5}])[1] is False
