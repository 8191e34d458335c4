"""Gemini 3.5 Transcribe for the timeline, through the real google-genai SDK and FakeGemini: the
fake's strictness, the merge of the general model's answer onto the transcript, the fallback."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from conftest import ROOT
from runpipe.model import AudioFile, MediaItem, Task, TimeRange
from runpipe.paths import builtin_schemas_dir
from runpipe.plugins.gemini import GeminiBackend
from runpipe.plugins.gemini.transcribe import duration_seconds, pieces
from runpipe.plugins.local.models import REQUIRED_PACKAGES
from runpipe.testing.fake_transcribe import Transcript, Utterance, general_answer
from runpipe.testing.gemini_server import Answer, FakeGemini, HttpError, noise_wav
from runpipe.timecode import format_clock, parse_clock

SCHEMA = json.loads((builtin_schemas_dir() / "transcript.schema.json").read_text())
GERMAN = {"Guten Abend und willkommen zur Sendung.": "Good evening and welcome to the show.",
          "Wir sprechen heute über das Wetter.": "Today we talk about the weather."}
LINES = [
    ("spk_1", "en-US", "Welcome back to the show everybody."),
    ("spk_2", "en-US", "Thanks for having me it is good to be here."),
    ("spk_1", "de-DE", "Guten Abend und willkommen zur Sendung."),
    ("spk_2", "en-US", "Shall we start with the news of the week."),
    ("spk_1", "de-DE", "Wir sprechen heute über das Wetter."),
    ("spk_2", "en-US", "It rained all week in the north."),
    ("spk_1", "en-US", "And the south stayed dry and warm."),
    ("spk_2", "en-US", "That is all for today thank you."),
    ("spk_1", "en-US", "See you next time on the show."),
    ("spk_2", "en-US", "Goodbye everybody."),
]
EMOTIONS = ["happy", "happy", "neutral", "neutral", "neutral", "sad", "neutral", "happy", "happy", "happy"]
DRIFT = 14.0  # seconds the general model's timestamps are late, far beyond any snapping distance


def conversation(start: float = 1.3, word_seconds: float = 0.32, pause: float = 1.7) -> Transcript:
    """The speech: ten turns of two speakers, English and German, at known word times."""
    utterances, t = [], start
    for speaker, language, line in LINES:
        words = []
        for word in line.split():
            words.append((word, round(t, 3), round(t + word_seconds - 0.05, 3)))
            t += word_seconds
        utterances.append(Utterance.spoken(speaker, language, words))
        t += pause
    return Transcript(tuple(utterances))


def drifted(transcript: Transcript) -> dict:
    return general_answer(
        transcript, drift=DRIFT, summary="A short bilingual show.",
        fields=lambda i, u: {"language": "German" if u.language_code.startswith("de") else "English",
                             "translation": GERMAN.get(u.text, ""), "emotion": EMOTIONS[i]},
    )


@pytest.fixture
def without_local_models(tmp_path):
    """Environment for a CLI run in which the offline models' packages cannot be imported."""
    site = tmp_path / "block-local-models"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in REQUIRED_PACKAGES if name != "numpy")
    )
    return {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


def run_podcast(tmp_path, server, env, *extra):
    (tmp_path / "in").mkdir()
    audio = noise_wav(tmp_path / "in" / "show.wav", 60.0)
    env = {**os.environ, "GEMINI_API_KEY": server.api_key, "GOOGLE_GEMINI_BASE_URL": server.base_url, **env}
    out = subprocess.run(
        [sys.executable, "-m", "runpipe", str(ROOT / "pipelines" / "podcast.yaml"), str(audio), "--backend", "gemini",
         "-o", str(tmp_path / "out"), "--json", "--no-progress", *extra],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout), json.loads((tmp_path / "out" / "show.json").read_text())


def test_podcast_takes_the_transcripts_timeline_without_the_local_models(tmp_path, without_local_models):
    transcript = conversation()
    with FakeGemini() as server:
        server.script(Answer(drifted(transcript)))
        server.transcribe.script(transcript)
        summary, result = run_podcast(tmp_path, server, without_local_models)
        (request,) = server.requests_to("transcribe")
    config = request.body["generationConfig"]["audioTranscriptionConfig"]
    assert config.get("word_timestamp", config.get("wordTimestamp")) is True
    assert config.get("diarization") is True

    truth = transcript.utterances
    starts = [s["start"] for s in result["segments"]]
    within = sum(abs(s - u.words[0].start) <= 0.5 for s, u in zip(starts, truth))
    assert len(starts) == len(truth) and within / len(truth) >= 0.9
    # the drifted answer alone would have put every segment 14 s late
    assert all(abs(parse_clock(g["timestamp"]) - s) > 10 for g, s in zip(drifted(transcript)["segments"], starts))
    segments = result["segments"]
    assert [s["language_code"] for s in segments] == [u.language_code[:2] for u in truth]
    assert segments[2]["language"] == "German"
    assert [s["speaker"] for s in segments] == [f"Speaker {u.speaker[-1]}" for u in truth]
    assert segments[2]["translation"] == GERMAN[truth[2].text] and not segments[0].get("translation")
    assert [s["emotion"] for s in segments] == EMOTIONS
    assert all(s["timing"] == "aligned" and len(s["words"]) == len(u.words) for s, u in zip(segments, truth))
    assert result["summary"] == "A short bilingual show."

    models = {m["role"]: m for m in result["models"]}
    assert models["timeline"]["model"] == "gemini-3.5-transcribe"
    assert models["understanding"]["model"] == "gemini-3.8-flash"
    assert models["timeline"]["usage"]["requests"] == models["understanding"]["usage"]["requests"] == 1
    assert result["usage"]["requests"] == 2
    notes = summary["inputs"][0]["notes"]
    assert any("from gemini-3.5-transcribe" in n for n in notes)
    assert not any("approximate" in n for n in notes)  # nothing was left to re-timing


def test_without_access_to_the_transcription_model_it_falls_back_and_says_so(tmp_path, without_local_models):
    transcript = conversation()
    with FakeGemini() as server:
        server.transcribe.access = False
        server.script(Answer(drifted(transcript)))
        summary, result = run_podcast(tmp_path, server, without_local_models)
        assert len(server.requests_to("transcribe")) == 1
    assert summary["ok"]
    notes = summary["inputs"][0]["notes"]
    assert any("not gemini-3.5-transcribe" in n and "404" in n for n in notes)
    assert any("approximate" in n and "offline models" in n for n in notes)  # and re-timing could not help
    assert result["notes"] == notes
    assert result["segments"][0]["start"] == pytest.approx(parse_clock(drifted(transcript)["segments"][0]["timestamp"]))
    assert "models" not in result  # one model gave everything


# -- the backend directly ---------------------------------------------------------------------------


def local_audio(tmp_path, seconds=40.0, rate=16000):
    path = noise_wav(tmp_path / "talk.wav", seconds, rate=rate)
    return AudioFile(MediaItem(str(path), "file", "talk.wav"), path, "audio/wav", seconds, "hash-" + str(seconds))


def transcript_task(vocabulary=()):
    return Task("transcript", "Transcribe.", "transcript", SCHEMA, vocabulary=tuple(vocabulary))


@pytest.fixture
def server():
    with FakeGemini() as fake:
        yield fake


def backend(server, **options):
    return GeminiBackend({"base_url": server.base_url, "api_key_env": "FAKE_KEY", "retry_base_delay": 0.0, **options})


def test_vocabulary_and_speaker_names_go_as_custom_vocabulary(server, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_KEY", server.api_key)
    transcript = conversation()
    server.script(Answer(drifted(transcript)))
    server.transcribe.script(transcript)
    analysis = backend(server).analyze(local_audio(tmp_path), transcript_task(["Ada", "Bert", "runpipe"]))
    (request,) = server.requests_to("transcribe")
    config = request.body["generationConfig"]["audioTranscriptionConfig"]
    assert config.get("custom_vocabulary", config.get("customVocabulary")) == ["Ada", "Bert", "runpipe"]
    assert "contents" in request.body and "systemInstruction" not in request.body  # audio only, no prompt
    assert [u.usage.requests for u in analysis.models] == [1, 1]


def test_timeline_turned_off_asks_only_the_general_model(server, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_KEY", server.api_key)
    server.script(Answer(drifted(conversation())))
    analysis = backend(server, transcribe_timeline=False).analyze(local_audio(tmp_path), transcript_task())
    assert server.requests_to("transcribe") == [] and analysis.models == () and analysis.notes == ()


def test_a_refusal_is_remembered_and_a_quota_error_is_not(server, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_KEY", server.api_key)
    gemini = backend(server, max_retries=0)
    server.script(*[Answer(drifted(conversation()))] * 3)
    server.transcribe.script(HttpError(429))
    first = gemini.analyze(local_audio(tmp_path), transcript_task())
    assert "429" in first.notes[0]
    server.transcribe.access = False
    gemini.analyze(local_audio(tmp_path), transcript_task())
    gemini.analyze(local_audio(tmp_path), transcript_task())
    assert len(server.requests_to("transcribe")) == 2  # the 404 is not asked again


def test_audio_over_30_minutes_is_transcribed_in_pieces(server, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_KEY", server.api_key)
    audio = local_audio(tmp_path, seconds=2400.0, rate=1000)
    # each piece hears one word 5 s into it
    server.transcribe.default = lambda request: Transcript.of(Utterance.spoken("spk_1", "en-US", [("hello", 5.0, 5.4)]))
    server.script(Answer({"summary": "", "segments": [
        {"speaker": "Speaker 1", "timestamp": t, "content": "hello", "language": "English", "language_code": "en",
         "translation": "", "emotion": "neutral"} for t in ("00:20", "20:20")]}))
    analysis = backend(server).analyze(audio, transcript_task())
    assert len(server.requests_to("transcribe")) == 2
    assert [s["start"] for s in analysis.data["segments"]] == [5.0, 1205.0]
    assert pieces(TimeRange(0.0, 2400.0)) == [TimeRange(0.0, 1200.0), TimeRange(1200.0, 2400.0)]


# -- FakeGemini's transcription model, through the SDK alone ------------------------------------------


def sdk(server):
    return genai.Client(api_key=server.api_key, http_options={"base_url": server.base_url})


def audio_part(tmp_path, seconds=3.0, rate=16000):
    return types.Part.from_bytes(data=noise_wav(tmp_path / f"a{seconds}.wav", seconds, rate=rate).read_bytes(), mime_type="audio/wav")


def transcribe(server, part, **config):
    client = sdk(server)  # kept: a collected client closes its connection pool
    return client.models.generate_content(
        model="gemini-3.5-transcribe", contents=[part],
        config=types.GenerateContentConfig(audio_transcription_config=types.AudioTranscriptionConfig(**config)) if config else None,
    )


def test_fake_answers_word_offsets_and_speakers_only_when_asked(server, tmp_path):
    server.transcribe.script(conversation(), conversation())
    timed = transcribe(server, audio_part(tmp_path), word_timestamp=True, diarization=True)
    heard = timed.candidates[0].content.parts[0].audio_transcription
    assert heard.speaker_label == "spk_1" and heard.language_code == "en-US"
    assert heard.words[0].word == "Welcome" and heard.words[0].start_offset == "1.300s"
    assert duration_seconds(heard.end_offset) == pytest.approx(conversation().utterances[0].words[-1].end)
    plain = transcribe(server, audio_part(tmp_path))  # the guide's first example sends no config
    heard = plain.candidates[0].content.parts[0].audio_transcription
    assert heard.words is None and heard.speaker_label is None and plain.text.startswith("Welcome")


@pytest.mark.parametrize("case, config, status", [
    ("31 minutes with word times", {"word_timestamp": True}, 400),
    ("31 minutes with diarization", {"diarization": True}, 400),
    ("SMART with timestamps", {"word_timestamp": True, "mode": "SMART"}, 400),
    ("too much vocabulary", {"custom_vocabulary": [f"w{i}" for i in range(1001)]}, 400),
])
def test_fake_refuses_what_the_model_does_not_take(server, tmp_path, case, config, status):
    seconds = 1860.0 if case.startswith("31") else 3.0
    with pytest.raises(genai_errors.APIError) as caught:
        transcribe(server, audio_part(tmp_path, seconds, rate=1000), **config)
    assert caught.value.code == status


def test_fake_takes_31_minutes_without_timing_and_refuses_config_on_general_models(server, tmp_path):
    server.transcribe.script(conversation())
    assert transcribe(server, audio_part(tmp_path, 1860.0, rate=1000), custom_vocabulary=["Ada"]).text
    client = sdk(server)
    with pytest.raises(genai_errors.APIError) as caught:
        client.models.generate_content(
            model="gemini-3.8-flash", contents=[audio_part(tmp_path)],
            config=types.GenerateContentConfig(audio_transcription_config=types.AudioTranscriptionConfig(word_timestamp=True)))
    assert caught.value.code == 400
    server.transcribe.access = False
    with pytest.raises(genai_errors.APIError) as caught:
        transcribe(server, audio_part(tmp_path), word_timestamp=True)
    assert caught.value.code == 404


def test_a_meetings_decisions_move_with_the_segments_they_were_said_in(server, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_KEY", server.api_key)
    meeting = json.loads((builtin_schemas_dir() / "meeting.schema.json").read_text())
    transcript = conversation()
    answer = general_answer(transcript, drift=DRIFT, summary="Weather talk.")
    said = parse_clock(answer["segments"][5]["timestamp"]) + 1  # a second into "It rained all week..."
    answer.update(decisions=[{"decision": "Talk about rain", "timestamp": format_clock(said)}], action_items=[])
    server.script(Answer(answer))
    server.transcribe.script(transcript)
    analysis = backend(server).analyze(local_audio(tmp_path), Task("notes", "Notes.", "meeting", meeting))
    (decision,) = analysis.data["decisions"]
    truth = transcript.utterances[5].words[0].start + 1
    assert abs(parse_clock(decision["timestamp"]) - truth) <= 1.0  # whole seconds, no longer 14 s late
