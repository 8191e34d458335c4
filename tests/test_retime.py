"""Re-timing: the alignment on synthetic recognised words (no models), then whole runs on
generated speech (espeak-ng turns of samples/podcast_sample.ogg) placed at known offsets, with
answers whose timestamps drift by many seconds."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest

from conftest import SAMPLE
from runpipe.model import Segment
from runpipe.plugins.retime.align import RetimeSettings, TimedWord, retime_segments
from runpipe.testing import ScriptedBackendPlugin, make_engine, write_wav

# -- the alignment on synthetic recognised words ---------------------------------------------


def heard(text: str, start: float, seconds_per_word: float = 0.3) -> list[TimedWord]:
    """``text`` as a recogniser would return it: one word after another from ``start``."""
    return [
        TimedWord(word, round(start + i * seconds_per_word, 3), round(start + (i + 1) * seconds_per_word, 3))
        for i, word in enumerate(text.split())
    ]


def segment(clock: str, content: str, speaker: str = "Speaker 1") -> Segment:
    minutes, seconds = clock.split(":")
    start = int(minutes) * 60 + int(seconds)
    return Segment(start=start, end=start + 3.0, content=content, speaker=speaker, original_timestamp=clock)


def assert_well_formed(result: tuple[Segment, ...], duration: float) -> None:
    starts = [s.start for s in result]
    assert starts == sorted(starts)
    assert all(s.start <= s.end <= duration for s in result)
    assert all(w.end <= duration for s in result for w in s.words)
    last_end: dict[str | None, float] = {}
    for s in result:
        assert s.start >= last_end.get(s.speaker, 0.0), f"{s.speaker} speaks twice at once at {s.start}"
        last_end[s.speaker] = s.end


def test_drifted_and_hallucinated_times_take_the_heard_times():
    segments = [segment("00:50", "Welcome back to the show."), segment("01:10", "Thanks for having me.", "Speaker 2")]
    recognized = heard("welcome back to the show", 2.0) + heard("thanks for having me", 9.0)
    result, stats = retime_segments(segments, recognized, [(2.0, 3.5), (9.0, 10.2)], duration=12.0)
    assert [(s.start, s.end) for s in result] == [(2.0, 3.5), (9.0, 10.2)]
    assert [s.timing for s in result] == ["aligned", "aligned"] and [s.anchored_share for s in result] == [1.0, 1.0]
    assert [s.original_timestamp for s in result] == ["00:50", "01:10"]
    # punctuation stays on the words: subtitles are cut from them
    assert [w.text for w in result[0].words] == ["Welcome", "back", "to", "the", "show."]
    assert [w.start for w in result[1].words] == [9.0, 9.3, 9.6, 9.9]
    assert (stats.aligned, stats.interpolated, stats.model, stats.anchored_words, stats.words) == (2, 0, 0, 9, 9)
    assert_well_formed(result, 12.0)


def test_misheard_words_are_interpolated_at_the_voices_pace_and_a_pause_stays_a_pause():
    segments = [segment("00:00", "Welcome back to the show."), segment("00:03", "Zorblax Quintessa said hello there.")]
    # the recogniser heard the opening names as something else entirely
    recognized = heard("welcome back to the show", 1.0) + heard("sorry", 9.0) + heard("said hello there", 9.6)
    result, stats = retime_segments(segments, recognized, None, duration=12.0)
    first, second = result
    assert first.end == 2.5  # not stretched over the pause up to the next segment
    assert second.timing == "interpolated" and second.anchored_share == 0.6
    assert [w.probability for w in second.words] == [None, None, 1.0, 1.0, 1.0]
    # the segment starts where speech resumes (the misheard "sorry"), and the two unheard names
    # fill the speech up to "said"
    assert second.start == 9.0 and second.words[0].start == 9.0 and second.words[1].end == 9.6
    assert stats.interpolated == 1 and stats.aligned == 1
    assert_well_formed(result, 12.0)


def test_a_segment_with_no_word_heard_is_placed_on_the_speech_between_its_neighbours():
    segments = [segment("00:00", "One two three."), segment("00:09", "Mumble mumble."), segment("00:12", "Four five six.")]
    recognized = heard("one two three", 1.0) + heard("four five six", 8.0)
    # voice activity found speech at 4.0-4.6 that the recogniser made nothing of
    result, stats = retime_segments(segments, recognized, [(1.0, 1.9), (4.0, 4.6), (8.0, 8.9)], duration=10.0)
    middle = result[1]
    assert middle.timing == "passage" and middle.anchored_share == 0.0
    assert (middle.start, middle.end) == (4.0, 4.6)  # on the passage, not on the silence around it
    assert [s.timing for s in result] == ["aligned", "passage", "aligned"] and stats.passage == 1
    assert_well_formed(result, 10.0)


def test_a_segment_never_moves_away_from_the_passage_its_anchors_confirm():
    # the backend's times say the second turn is at 2 s; its words were heard at 6 s
    segments = [segment("00:00", "Good morning everyone."), segment("00:02", "Morning, thanks for coming.", "Speaker 2")]
    recognized = heard("good morning everyone", 0.5) + heard("morning thanks for coming", 6.0)
    result, _ = retime_segments(segments, recognized, [(0.5, 1.4), (2.0, 2.5), (6.0, 7.2)], duration=8.0)
    assert [s.start for s in result] == [0.5, 6.0]
    assert [s.timing for s in result] == ["aligned", "aligned"]


def test_a_segment_is_not_squeezed_below_the_speech_its_words_need():
    # two long turns, one short passage each, and a backend that puts both at 0:01
    first, second = "word " * 12, "other " * 12
    segments = [segment("00:01", first), segment("00:01", second, "Speaker 2")]
    result, _ = retime_segments(segments, [], [(1.0, 4.0), (5.0, 8.0)], duration=9.0)
    assert [(s.start, s.end) for s in result] == [(1.0, 4.0), (5.0, 8.0)]
    assert {s.timing for s in result} == {"passage"}


def test_segments_stay_in_order_when_heard_times_overlap():
    segments = [segment("00:00", "One two.", "Speaker 1"), segment("00:00", "Three four.", "Speaker 2")]
    # two voices at once: the recogniser puts the second voice's first word before the first's
    recognized = heard("one two", 5.0) + [TimedWord("three", 4.9, 5.5), TimedWord("four", 5.5, 5.8)]
    result, _ = retime_segments(segments, recognized, None, duration=10.0)
    assert [s.content for s in result] == ["One two.", "Three four."]
    assert result[0].start == pytest.approx(5.0, abs=0.1) and result[0].start < result[1].start <= 5.5
    assert_well_formed(result, 10.0)


@pytest.mark.parametrize(("second_speaker", "first_end"), [("Speaker 1", 1.5), ("Speaker 2", 1.9)])
def test_a_voice_never_overlaps_its_own_previous_segment(second_speaker, first_end):
    segments = [segment("00:00", "One two."), segment("00:02", "Three.", second_speaker)]
    # the recogniser heard "three" while "two" was still going on
    recognized = [TimedWord("one", 1.0, 1.3), TimedWord("two", 1.3, 1.9), TimedWord("three", 1.5, 1.8)]
    result, _ = retime_segments(segments, recognized, None, duration=5.0)
    assert result[0].end == first_end  # another voice may talk over it; the same voice may not
    assert result[1].start == 1.5


def test_a_start_does_not_snap_to_the_onset_of_the_previous_segments_words():
    segments = [segment("00:00", "Oh, hello."), segment("00:01", "I know.")]
    # one speech region holds both: its onset at 1.0 is where "oh" starts, not "I"
    recognized = heard("oh hello", 1.0, 0.15) + heard("i know", 1.4)
    result, _ = retime_segments(segments, recognized, [(1.0, 2.0)], duration=5.0, settings=RetimeSettings(snap_seconds=0.5))
    assert [s.start for s in result] == [1.0, 1.4]
    assert result[0].end == 1.3 and result[1].end == 2.0  # ends snap only to offsets before the next words


def test_nothing_passes_the_end_of_the_audio():
    segments = [
        segment("00:00", "Said hello and then a great many words that nobody heard at all."),
        segment("00:45", ""),  # an empty segment timestamped past the end
    ]
    result, stats = retime_segments(segments, heard("said hello", 9.0), None, duration=10.0)
    # the unheard words stay on the speech that was found, squeezed into it
    assert result[0].end == 9.6 and result[0].words[-1].end == 9.6
    assert result[1].start == 10.0 and result[1].timing == "model"
    assert stats.model == 1
    assert_well_formed(result, 10.0)


def test_no_speech_leaves_the_segments_to_the_caller():
    segments = [segment("00:03", "Hello there.")]
    result, stats = retime_segments(segments, heard("hello there", 1.0), [], duration=10.0)
    assert result == tuple(segments)
    assert stats.placed == 0 and stats.model == 1


def test_speech_with_no_word_anchored_still_places_the_segments():
    segments = [segment("00:03", "Hello there.")]
    result, stats = retime_segments(segments, heard("completely different", 1.0), None, duration=10.0)
    assert (result[0].start, result[0].end, result[0].timing) == (1.0, 1.6, "passage")
    assert stats.anchored_words == 0 and stats.passage == 1


def test_the_fuzzy_length_option_decides_which_misspelled_words_anchor():
    # the recogniser wrote "cat" and "sofa" as "cats" and "sofas"; "on the dog", heard exactly,
    # is a run and anchors either way
    segments = [segment("00:00", "cat on the dog sofa")]
    recognized = [TimedWord("cats", 1.0, 1.3), TimedWord("on", 1.4, 1.6), TimedWord("the", 2.0, 2.2),
                  TimedWord("dog", 2.2, 2.5), TimedWord("sofas", 2.6, 3.0)]

    def anchored(**options) -> list[bool]:
        (result,), _ = retime_segments(segments, recognized, None, duration=4.0, settings=RetimeSettings(**options))
        return [w.probability == 1.0 for w in result.words]
    assert anchored() == [False, True, True, True, True]  # "sofas" ~ "sofa"; "cat" is too short to match by spelling
    assert anchored(min_fuzzy_letters=3) == [True, True, True, True, True]
    assert anchored(min_fuzzy_letters=5) == [False, True, True, True, False]


def test_the_steps_options_are_documented_checked_and_reach_the_aligner():
    from runpipe.errors import PipelineConfigError
    from runpipe.options import options_schema
    from runpipe.plugins.retime.step import RetimeOptions, RetimeStep

    properties = options_schema(RetimeOptions, "retime")["properties"]
    assert {"enabled", "beam_size", "band_seconds", "fuzzy_ratio", "min_fuzzy_letters", "backend_time_cost",
            "onset_look_back_seconds", "whisper_model_dir", "trust_local"} <= set(properties)
    assert all(entry.get("description") for entry in properties.values())
    step = RetimeStep({"min_fuzzy_letters": 3, "band_seconds": 60})
    assert (step.settings.min_fuzzy_letters, step.settings.band_seconds) == (3, 60.0)
    with pytest.raises(PipelineConfigError, match="post-processor retime: option fuzzy_ratio must be between 0 and 1"):
        RetimeStep({"fuzzy_ratio": 1.5})
    with pytest.raises(PipelineConfigError, match="min_seconds_per_letter .0.2. is above max_seconds_per_letter"):
        RetimeStep({"min_seconds_per_letter": 0.2})
    with pytest.raises(PipelineConfigError, match="unknown option.s. beam; known options: .*beam_size"):
        RetimeStep({"beam": 1})


def test_words_a_document_carries_are_used_and_their_speech_not_recognised_again(tmp_path, monkeypatch):
    # a long input whose first window Gemini Transcribe timed (words measured on the audio) and
    # whose second fell back to the general model's drifted MM:SS
    if models_missing():
        pytest.skip(models_missing())
    from runpipe.model import AudioFile, Document, MediaItem, Word
    from runpipe.plugins.retime import step

    item = MediaItem(str(tmp_path / "talk.ogg"), "file", "talk.ogg")
    timed = Segment(start=1.0, end=2.2, content="Good morning everyone.", timing="aligned",
                    words=(Word("Good", 1.0, 1.3), Word("morning", 1.3, 1.8), Word("everyone.", 1.8, 2.2)))
    drifted = Segment(start=40.0, end=43.0, content="Thanks for coming today.")
    document = Document(source=item, audio=AudioFile(item, item.path, "audio/ogg", 60.0, "hash"), task="transcript",
                        schema_name="transcript", backend="gemini", model="m", segments=(timed, drifted))
    asked = []

    def listen(path, start, end, options, *, known):
        asked.append(known)  # the VAD finds both passages; only the second is recognised
        return step.Heard(((1.0, 2.2), (30.0, 31.6)), tuple(heard("thanks for coming today", 30.0, 0.4)))

    monkeypatch.setattr(step, "listen", listen)
    monkeypatch.setenv("RUNPIPE_USER_PATH", str(tmp_path / "state"))  # nothing heard is cached yet
    result = step.RetimeStep().process(document)
    assert asked == [((1.0, 2.2),)]
    assert [(s.start, s.timing) for s in result.segments] == [(1.0, "aligned"), (30.0, "aligned")]
    assert [w.start for w in result.segments[0].words] == [1.0, 1.3, 1.8]  # its own words, kept
    # without trust in measured words, everything is recognised again
    step.RetimeStep({"trust_local": False}).process(document)
    assert asked[-1] == ()


def test_the_source_file_is_heard_not_the_copy_made_for_uploading(tmp_path, monkeypatch):
    # the normalized copy is 32 kbps Vorbis: on it Whisper heard the sample's "Thanks for
    # having me" as "I don't want to be in"; the source is what the offline backend decodes too
    if models_missing():
        pytest.skip(models_missing())
    from runpipe.model import AudioFile, Document, MediaItem
    from runpipe.plugins.retime import step

    source = tmp_path / "talk.wav"
    source.write_bytes(b"RIFF")  # never decoded here: listen is replaced
    item = MediaItem(str(source), "file", "talk.wav")
    copy = tmp_path / "normalized" / "talk-16000hz-1ch-32k.ogg"
    segment = Segment(start=40.0, end=43.0, content="Thanks for coming today.")
    asked = []

    def listen(path, start, end, options, *, known):
        asked.append(path)
        return step.Heard(((30.0, 31.6),), tuple(heard("thanks for coming today", 30.0, 0.4)))

    monkeypatch.setattr(step, "listen", listen)
    monkeypatch.setenv("RUNPIPE_USER_PATH", str(tmp_path / "state"))
    for audio, expected in ((AudioFile(item, copy, "audio/ogg", 60.0, "hash"), source),
                            (AudioFile(MediaItem(str(tmp_path / "gone.wav"), "file", "gone.wav"), copy, "audio/ogg", 60.0, "hash2"), copy)):
        document = Document(source=audio.source, audio=audio, task="transcript", schema_name="transcript",
                            backend="gemini", model="m", segments=(segment,))
        (placed,) = step.RetimeStep().process(document).segments
        assert asked[-1] == expected and (placed.start, placed.timing) == (30.0, "aligned")


def test_packed_speech_maps_times_both_ways():
    from runpipe.plugins.retime.step import PackedSpeech

    recording = np.arange(6 * 16000, dtype=np.float32)
    packed = PackedSpeech.pack(recording, [(1.0, 2.0), (5.0, 5.5)], gap=0.3)
    assert packed.spans == ((0.0, 1.0), (1.3, 1.8))
    assert packed.samples.size == int(2.1 * 16000)
    assert packed.samples[int(1.3 * 16000)] == recording[5 * 16000]  # the second stretch follows the gap
    assert packed.to_packed(5.2) == pytest.approx(1.5) and packed.to_packed(1.25) == 0.25
    assert packed.to_recording(1.5, starts_word=True) == pytest.approx(5.2)
    assert packed.to_recording(0.25, starts_word=False) == 1.25
    # in the gap: a word's end belongs to the stretch before, a word's start to the one after
    assert packed.to_recording(1.1, starts_word=False) == 2.0
    assert packed.to_recording(1.1, starts_word=True) == 5.0


# -- whole runs on generated speech at known offsets -----------------------------------------

local_models = pytest.mark.local_models
RATE = 16000
TURNS = json.loads((SAMPLE.parent / "podcast_sample.json").read_text())["turns"]
GAPS = (1.0, 2.0, 1.5, 3.0, 2.0, 1.0)  # silence before each turn, seconds
TAIL = 2.0


def models_missing() -> str | None:
    from runpipe.plugins.local.models import missing_packages

    missing = missing_packages()
    return f"needs the offline models ({', '.join(missing)})" if missing else None


def from_first_sound(samples: np.ndarray, level: float = 0.02) -> np.ndarray:
    """The samples from the first 10 ms frame louder than ``level`` (espeak pads its turns)."""
    frame = RATE // 100
    loud = next(i for i in range(0, samples.size, frame) if np.abs(samples[i:i + frame]).max() > level)
    return samples[loud:]


@pytest.fixture(scope="module")
def spaced_turns(tmp_path_factory) -> tuple[Path, list[float]]:
    """The sample's six turns, each after a silence from GAPS; returns the WAV and each turn's
    true start (where its first sound was placed)."""
    reason = models_missing()
    if reason:
        pytest.skip(reason)
    from runpipe.plugins.local.audio import load_audio

    samples = load_audio(SAMPLE)
    pieces, starts, cursor = [], [], 0.0
    for gap, turn in zip(GAPS, TURNS):
        speech = from_first_sound(samples[int(turn["start"] * RATE):int(turn["end"] * RATE)])
        pieces += [np.zeros(int(gap * RATE), np.float32), speech]
        starts.append(round(cursor + gap, 3))
        cursor += gap + speech.size / RATE
    pieces.append(np.zeros(int(TAIL * RATE), np.float32))
    return write_wav(tmp_path_factory.mktemp("spaced") / "spaced.wav", np.concatenate(pieces)), starts


def clock(seconds: float) -> str:
    whole = int(round(seconds))
    return f"{whole // 60:02d}:{whole % 60:02d}"


def answer(clocks: list[str], turns: list[dict] = TURNS) -> dict:
    return {
        "summary": "Two hosts talk about turning recordings into notes.",
        "segments": [
            {"speaker": turn["speaker"], "timestamp": at, "content": turn["text"],
             "language": "German" if turn["voice"].startswith("de") else "English",
             "language_code": turn["voice"][:2], "translation": "", "emotion": "neutral"}
            for at, turn in zip(clocks, turns)
        ],
    }


def drifted_clocks(starts: list[float], duration: float) -> list[str]:
    """Gemini-like timestamps: 1.3 x the true time + 5 s, the last one past the end."""
    return [clock(t * 1.3 + 5.0) for t in starts[:-1]] + [clock(duration + 10.0)]


def audio_seconds(path: Path) -> float:
    with wave.open(str(path)) as audio:
        return audio.getnframes() / audio.getframerate()


def run(tmp_path: Path, audio: Path, analyze: dict, postprocess: dict | None = None, plugins=()) -> dict:
    stages = {"analyze": analyze, "export": {"formats": ["json"]}}
    if postprocess is not None:
        stages["postprocess"] = postprocess
    with make_engine(plugins, postprocess=True) as engine:
        result = engine.run(engine.load_dict({"name": "retime", "stages": stages}), [str(audio)], output_dir=tmp_path / "out")
    (item,) = result.inputs
    assert item.status == "done", item.error
    return json.loads((tmp_path / "out" / f"{audio.stem}.json").read_text())


def scripted(**task) -> dict:
    return {"backend": "scripted", "tasks": [{"prompt": "transcript", **task}]}


@local_models
def test_gemini_answer_drifted_by_seconds_is_retimed_onto_the_speech(tmp_path, monkeypatch, spaced_turns):
    from runpipe.testing.gemini_server import Answer, FakeGemini

    audio, starts = spaced_turns
    clocks = drifted_clocks(starts, audio_seconds(audio))
    with FakeGemini() as server:
        server.script(Answer(answer(clocks)))
        monkeypatch.setenv("GEMINI_API_KEY", server.api_key)
        gemini = {"base_url": server.base_url, "retry_base_delay": 0.01, "max_retries": 0}
        data = run(tmp_path, audio, {"backend": "gemini", "backends": {"gemini": gemini}, "tasks": [{"prompt": "transcript"}]})
        assert len(server.requests_to("generateContent")) == 1
    duration = data["media"]["duration"]
    segments = data["segments"]
    assert [s["content"] for s in segments] == [t["text"] for t in TURNS]
    # within 0.2 s of each turn's first sound: the largest error measured was 0.08 s (the second
    # turn), the same with Debian's ffmpeg 5.1, imageio-ffmpeg's and ctranslate2 4.6.3 (pinned
    # 4.8.5), plus the 0.1 s issue 12 allows between machines
    assert [s["start"] for s in segments] == pytest.approx(starts, abs=0.2)
    assert all(s["end"] <= duration for s in segments)
    assert [s["original_timestamp"] for s in segments] == clocks
    assert {s["timing"] for s in segments} == {"aligned"}
    assert any(note.startswith("re-timed 6 of 6 segments") for note in data["notes"]), data["notes"]


@local_models
def test_retime_disabled_keeps_the_backends_times_clamped(tmp_path, spaced_turns):
    audio, starts = spaced_turns
    clocks = drifted_clocks(starts, audio_seconds(audio))
    backend_plugin = ScriptedBackendPlugin(answer(clocks))
    data = run(tmp_path, audio, scripted(), {"steps": [{"retime": {"enabled": False}}]}, [backend_plugin])
    duration = data["media"]["duration"]
    stated = [int(c[:2]) * 60 + int(c[3:]) for c in clocks]
    assert [s["start"] for s in data["segments"]] == [min(t, duration) for t in stated]
    assert data["segments"][-1]["start"] == duration and all(s["end"] <= duration for s in data["segments"])
    assert not any("re-timed" in note for note in data["notes"])


@local_models
def test_time_range_keeps_segments_by_their_retimed_start(tmp_path, spaced_turns):
    audio, starts = spaced_turns
    # turns 2 and 3 truly start at about 9.4 s and 17.5 s: the answer for the window 00:10-00:20
    # (timestamps relative to the window) puts the first inside the range and the second after it
    assert starts[1] < 10.0 - 0.5 and 10.0 + 0.5 < starts[2] < 20.0 - 0.5
    backend_plugin = ScriptedBackendPlugin(answer(["00:01", "00:11"], TURNS[1:3]))
    data = run(tmp_path, audio, scripted(time_range="00:10-00:20"), plugins=[backend_plugin])
    (kept,) = data["segments"]
    assert kept["content"] == TURNS[2]["text"]
    # on the original timeline: at most 0.005 s off measured (both ffmpeg builds, ctranslate2
    # 4.6.3 and 4.8.5), plus the 0.1 s issue 12 allows between machines
    assert kept["start"] == pytest.approx(starts[2], abs=0.15)
    (call,) = backend_plugin.calls
    assert call[0].duration == pytest.approx(10.0, abs=0.1)  # the backend heard only the window


@local_models
def test_invented_segments_over_silence_stay_approximate(tmp_path):
    # (that the offline backend itself gives an empty transcript for silence is
    # tests/test_local_backend.py::test_silence_gives_empty_transcript)
    if models_missing():
        pytest.skip(models_missing())
    audio = write_wav(tmp_path / "silence.wav", np.zeros(10 * RATE, np.float32))
    backend_plugin = ScriptedBackendPlugin(answer(["00:02", "00:15"], TURNS[:2]))
    data = run(tmp_path, audio, scripted(), plugins=[backend_plugin])
    segments = data["segments"]
    assert [s["timing"] for s in segments] == ["approximate", "approximate"]
    assert [s["anchored_share"] for s in segments] == [0.0, 0.0]
    assert [s["start"] for s in segments] == [2.0, data["media"]["duration"]]
    assert all("words" not in s for s in segments)  # no word times made up
    assert any("approximate: no speech" in note for note in data["notes"]), data["notes"]
