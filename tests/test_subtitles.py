"""Subtitle-grade SRT and WebVTT: limits, speakers, round trips through the libraries."""

import io
from pathlib import Path

import pytest
import srt
import webvtt

from runpipe.model import AudioFile, Document, MediaItem, Segment, Speaker, Word
from runpipe.plugins.exporters.subtitles import CueRules, SrtExporter, VttExporter, build_cues, wrap

TEXT = ("So the thing about long recordings is that nobody listens to them again, right? "
        "Exactly, and that is why we wrote a tool that cuts them into pieces people can read and search.")


def timed_words(text: str, start: float, pace: float = 0.3, pause_after: dict[int, float] | None = None) -> tuple[Word, ...]:
    words, t = [], start
    for index, token in enumerate(text.split()):
        words.append(Word(token, t, t + pace * 0.9))
        t += pace + (pause_after or {}).get(index, 0.0)
    return tuple(words)


def document(segments, speakers=(Speaker("Speaker 1", "Ada"), Speaker("Speaker 2"))) -> Document:
    item = MediaItem("/x/a.ogg", "file", "a.ogg")
    audio = AudioFile(item, Path("/x/a.ogg"), "audio/ogg", 120.0, "0" * 64)
    return Document(item, audio, "transcript", "transcript", "test", "m", {"summary": ""}, tuple(segments), speakers)


def long_doc() -> Document:
    first = timed_words(TEXT, 1.0, pause_after={13: 1.2})
    return document([
        Segment(1.0, first[-1].end, TEXT, speaker="Speaker 1", words=first),
        Segment(40.0, 43.0, "Short answer.", speaker="Speaker 2"),
    ])


def test_line_and_cue_limits_hold():
    rules = CueRules()
    cues = build_cues(long_doc(), rules)
    assert len(cues) >= 4
    for cue in cues:
        assert 1 <= len(cue.lines) <= 2
        assert all(len(line) <= 42 for line in cue.lines)
        assert cue.end - cue.start <= rules.max_duration + 1e-6
        assert cue.end > cue.start


def test_breaks_prefer_sentence_end_and_pauses():
    cues = build_cues(long_doc(), CueRules())
    ends = [" ".join(c.lines) for c in cues]
    assert any(text.endswith("right?") for text in ends)  # break at the question mark
    # the 1.2 s pause after word 14 ("right?") closes a cue there too; no cue spans it
    for cue in cues:
        assert not (cue.start < 1.0 + 14 * 0.3 < cue.end and cue.end > 1.0 + 14 * 0.3 + 1.2)


def test_never_across_speaker_change():
    cues = build_cues(long_doc(), CueRules())
    assert {c.speaker for c in cues if c.start >= 40} == {"Speaker 2"}
    assert all(c.speaker == "Speaker 1" for c in cues if c.start < 40)


def test_configurable_limits():
    cues = build_cues(long_doc(), CueRules(max_line_chars=20, max_lines=1))
    assert all(len(c.lines) == 1 and len(c.lines[0]) <= 20 for c in cues)


def test_minimum_duration_without_overlap():
    doc = document([Segment(5.0, 5.2, "Hi.", speaker="Speaker 1"), Segment(5.6, 7.0, "Hello there.", speaker="Speaker 2")])
    first, second = build_cues(doc, CueRules(min_duration=1.0))
    assert first.end == pytest.approx(5.6)  # stretched toward 1 s but not into the next cue
    assert second.start == pytest.approx(5.6)


def test_srt_round_trip_with_speaker_prefix():
    text = SrtExporter({}).render(long_doc())
    subs = list(srt.parse(text))
    assert subs[0].content.startswith("Ada: So the thing")
    assert not subs[1].content.startswith("Ada:")  # prefix only where the speaker changes
    assert any(s.content.startswith("Speaker 2: Short answer.") for s in subs)
    assert [s.index for s in subs] == list(range(1, len(subs) + 1))
    assert subs[0].start.total_seconds() == pytest.approx(1.0)


@pytest.mark.parametrize("name", ["Ada", "Dr. Grace Brewster Murray Hopper"])
def test_srt_limits_count_the_speaker_prefix(name):
    doc = document(long_doc().segments, (Speaker("Speaker 1", name), Speaker("Speaker 2")))
    subs = list(srt.parse(SrtExporter({}).render(doc)))
    lines = [line for sub in subs for line in sub.content.split("\n")]
    assert subs[0].content.startswith(f"{name}: So")
    assert all(len(line) <= 42 for line in lines), [line for line in lines if len(line) > 42]
    assert all(len(sub.content.split("\n")) <= 2 for sub in subs)
    # every word is still shown, each once
    shown = " ".join(sub.content.replace("\n", " ") for sub in subs).replace(f"{name}: ", "").replace("Speaker 2: ", "")
    assert shown == TEXT + " Short answer."


def test_srt_without_speakers():
    text = SrtExporter({"speakers": False}).render(long_doc())
    assert "Ada:" not in text


def test_vtt_round_trip_with_voice_tags_and_escaping():
    doc = document([Segment(1.0, 3.0, "a < b & c", speaker="Speaker 1")])
    text = VttExporter({}).render(doc)
    assert "<v Ada>a &lt; b &amp; c" in text
    parsed = webvtt.from_buffer(io.StringIO(text)) if hasattr(webvtt, "from_buffer") else webvtt.read_buffer(io.StringIO(text))
    (caption,) = parsed.captions
    assert caption.voice == "Ada" and caption.start == "00:00:01.000"


def test_empty_transcript_gives_valid_empty_files():
    doc = document([])
    assert SrtExporter({}).render(doc) == ""
    assert VttExporter({}).render(doc).startswith("WEBVTT")


def test_wrap_balances_lines():
    assert wrap("one two three four five six".split(), 20, 2) == ("one two three", "four five six")
    assert wrap(["x" * 50], 42, 2) is None


def test_impossible_limits_are_config_errors():
    from runpipe.errors import PipelineConfigError

    with pytest.raises(PipelineConfigError, match="export format srt: option max_line_chars must be at least 10, got 3"):
        SrtExporter({"max_line_chars": 3})
    with pytest.raises(PipelineConfigError, match=r"export format vtt: min_duration \(8 s\) is longer than max_duration \(7 s\)"):
        VttExporter({"min_duration": 8})
    with pytest.raises(PipelineConfigError, match="export format srt: option speakers must be true or false, got 'yes'"):
        SrtExporter({"speakers": "yes"})
