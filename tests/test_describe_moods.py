"""Emotion in music (issue 16): the describe pipeline asks for each music passage's mood and
energy, and the lyrics' language; JSON, Markdown and HTML show them; an answer without them
(an older prompt, or a user's own schema) still exports; offline, mood is said not estimated."""

import json
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT
from runpipe.answer import parse_item
from runpipe.model import Feelings
from runpipe.plugins.feelings import ENERGIES, MOODS, SPEECH_EMOTIONS, event_feelings, mood_phrase
from runpipe.testing import tone_wav
from runpipe.testing.gemini_server import Answer, FakeGemini

DESCRIBE = ROOT / "pipelines" / "describe.yaml"

WITH_MOODS = {
    "description": "A piano piece, then a woman sings in English over guitar, then applause.",
    "mood": "melancholic",
    "mood_detail": "wistful, then warmer",
    "answer": "A small concert hall, judging by the reverberation and the applause.",
    "events": [
        {"timestamp": "00:00", "end_timestamp": "00:02", "kind": "music", "description": "Slow solo piano",
         "mood": "melancholic", "mood_detail": "wistful", "energy": "low"},
        {"timestamp": "00:02", "end_timestamp": "00:04", "kind": "singing", "description": "A woman sings with guitar",
         "mood": "tender", "energy": "medium", "lyrics_language": "English", "lyrics_language_code": "en"},
        {"timestamp": "00:04", "end_timestamp": "00:05", "kind": "speech", "description": "A man thanks the audience",
         "emotion": "happy"},
        {"timestamp": "00:05", "end_timestamp": "00:06", "kind": "sound", "description": "Applause"},
    ],
}
# What the describe prompt got before moods existed: valid against the shipped schema.
WITHOUT_MOODS = {
    "description": "A jingle.",
    "answer": "",
    "events": [{"timestamp": "00:00", "end_timestamp": "00:03", "kind": "music", "description": "Jingle"}],
}


def run_cli(args, cwd, server):
    env = {**os.environ, "GEMINI_API_KEY": server.api_key, "GOOGLE_GEMINI_BASE_URL": server.base_url}
    return subprocess.run([sys.executable, "-m", "runpipe", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def describe_with(tmp_path, answer, pipeline=DESCRIBE):
    (tmp_path / "in").mkdir()
    song = tone_wav(tmp_path / "in" / "song.wav", seconds=6.0)
    with FakeGemini() as server:
        server.script(Answer(answer))
        out = run_cli([pipeline, song, "--backend", "gemini", "-o", tmp_path / "out", "--no-progress"], tmp_path, server)
        requests = server.requests_to("generateContent")
    assert out.returncode == 0, out.stderr
    folder = tmp_path / "out"
    return requests, {suffix: (folder / f"song.{suffix}").read_text() for suffix in ("json", "md", "html")}


def test_vocabularies_are_the_schemas():
    schema = json.loads((ROOT / "schemas" / "description.schema.json").read_text())
    event = schema["properties"]["events"]["items"]["properties"]
    assert tuple(schema["properties"]["mood"]["enum"]) == MOODS == tuple(event["mood"]["enum"])
    assert tuple(event["energy"]["enum"]) == ENERGIES
    assert tuple(event["emotion"]["enum"]) == SPEECH_EMOTIONS
    transcript = json.loads((ROOT / "schemas" / "transcript.schema.json").read_text())
    assert tuple(transcript["properties"]["segments"]["items"]["properties"]["emotion"]["enum"]) == SPEECH_EMOTIONS


def test_the_request_asks_for_moods(tmp_path):
    (request,), _ = describe_with(tmp_path, WITH_MOODS)
    config = request.body["generationConfig"]
    schema = config.get("responseJsonSchema") or config.get("responseSchema")
    event = schema["properties"]["events"]["items"]["properties"]
    assert {"mood", "mood_detail", "energy", "lyrics_language", "emotion"} <= set(event)
    assert "mood" in schema["properties"]
    prompt = " ".join(p.get("text", "") for p in request.body["contents"][0]["parts"])
    assert "For every music or singing event" in prompt and "energy" in prompt


def test_moods_reach_json_markdown_and_html(tmp_path):
    _, out = describe_with(tmp_path, WITH_MOODS)
    result = json.loads(out["json"])
    music, singing = result["events"][:2]
    assert (music["mood"], music["energy"]) == ("melancholic", "low")
    assert (singing["mood"], singing["lyrics_language_code"]) == ("tender", "en")
    assert result["mood"] == "melancholic"

    md = out["md"]
    assert "**Overall mood:** melancholic (wistful, then warmer)" in md
    assert "- [00:00–00:02] Slow solo piano (music, mood: melancholic (wistful), energy: low)" in md
    assert "(singing, mood: tender, energy: medium, lyrics: English)" in md
    assert "(speech, emotion: happy)" in md
    assert "## Mood" not in md  # shown once, as the overall mood line

    page = out["html"]
    assert 'id="sound-timeline"' in page
    # one bar per event, each seeking to its start; a mood mark on music and singing only
    bars = re.findall(r'<rect class="event-bar kind-(\w+)" data-seek="([\d.]+)"', page)
    assert bars == [("music", "0"), ("singing", "2"), ("speech", "4"), ("sound", "5")]
    assert re.findall(r'class="mood-mark mood-(\w+)"', page) == ["melancholic", "tender"]
    assert 'class="emotion-mark emotion-happy"' in page
    assert "Moods on music:" in page
    # in the events list and the overall mood section
    assert 'class="chip chip-mood mood-melancholic">Mood: melancholic (wistful)' in page
    assert "Energy: low" in page and "Lyrics: English" in page
    assert 'id="field-mood"' in page and "melancholic (wistful, then warmer)" in page


def test_an_answer_without_moods_is_accepted_and_exported(tmp_path):
    requests, out = describe_with(tmp_path, WITHOUT_MOODS)
    assert len(requests) == 1  # valid on the first request: no repair asked for missing moods
    result = json.loads(out["json"])
    assert "mood" not in result["events"][0]
    assert "mood:" not in out["md"] and "Overall mood" not in out["md"]
    assert "- [00:00–00:03] Jingle (music)" in out["md"]
    page = out["html"]
    assert 'class="event-bar kind-music"' in page and 'class="mood-mark' not in page and "Moods on music" not in page


def test_a_users_own_schema_without_moods(tmp_path):
    schema = {
        "type": "object",
        "properties": {"events": {"type": "array", "items": {
            "type": "object",
            "properties": {"timestamp": {"type": "string"}, "kind": {"type": "string"}, "description": {"type": "string"}},
            "required": ["timestamp", "kind", "description"]}}},
        "required": ["events"],
    }
    (tmp_path / "sounds.schema.json").write_text(json.dumps(schema))
    pipeline = tmp_path / "sounds.yaml"
    pipeline.write_text(
        "name: sounds\nstages:\n  analyze:\n    backend: gemini\n    tasks:\n"
        "      - name: sounds\n        prompt: {text: List the sounds.}\n        schema: sounds.schema.json\n"
        "  export:\n    formats: [json, md, html]\n"
    )
    answer = {"events": [{"timestamp": "00:01", "kind": "music", "description": "A fanfare", "mood": "triumphant"}]}
    _, out = describe_with(tmp_path, answer, pipeline)
    assert "- [00:01] A fanfare (music, mood: triumphant)" in out["md"]
    assert re.findall(r'class="mood-mark mood-(\w+)"', out["html"]) == ["triumphant"]


def test_mood_phrases():
    assert mood_phrase(Feelings(mood="other", mood_detail="eerie")) == "eerie"
    assert mood_phrase(Feelings(mood="calm", mood_detail="Calm")) == "calm"
    assert mood_phrase(Feelings(mood_detail="bittersweet")) == "bittersweet"
    assert mood_phrase(Feelings()) == ""
    assert event_feelings(parse_item({"kind": "sound", "description": "a door"}).feelings) == []
    lyrics = parse_item({"kind": "singing", "lyrics_language_code": "fr", "energy": " high ", "mood": ""})
    assert event_feelings(lyrics.feelings) == [("energy", "high"), ("lyrics", "fr")]


@pytest.mark.local_models
def test_offline_description_says_mood_was_not_estimated(tmp_path):
    pytest.importorskip("faster_whisper")
    (tmp_path / "in").mkdir()
    song = tone_wav(tmp_path / "in" / "song.wav", seconds=4.0)
    env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    out = subprocess.run([sys.executable, "-m", "runpipe", str(DESCRIBE), str(song), "--backend", "local",
                          "-o", str(tmp_path / "out"), "--no-progress"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    result = json.loads((tmp_path / "out" / "song.json").read_text())
    assert "mood" not in result and not any("mood" in event for event in result["events"])
    assert any("mood and energy were not estimated" in note for note in result["notes"])
    assert "mood and energy were not estimated" in (tmp_path / "out" / "song.md").read_text()


def test_windows_of_a_long_clip_stitch_to_one_valid_mood():
    """Each window of a long clip answers its own overall mood; joined, two enum words would fail
    the schema and sink the input, so the stitched answer takes the mood most windows gave."""
    import jsonschema

    from runpipe.chunking import stitch
    from runpipe.model import Analysis, TimeRange

    schema = json.loads((ROOT / "schemas" / "description.schema.json").read_text())
    moods = ["tense", "calm", "calm"]
    windows = [TimeRange(0.0, 600.0), TimeRange(598.0, 1200.0), TimeRange(1198.0, 1800.0)]
    analyses = [
        Analysis(task="description", backend="gemini", model="m", offset=w.start,
                 data={"description": f"part {i}", "answer": "", "mood": mood,
                       "events": [{"timestamp": "00:05", "kind": "music", "description": "music", "mood": mood}]})
        for i, (mood, w) in enumerate(zip(moods, windows))
    ]
    stitched = stitch(analyses, windows, schema)
    jsonschema.validate(stitched.data, schema)
    assert stitched.data["mood"] == "calm"
    assert stitched.data["description"] == "part 0\n\npart 1\n\npart 2"
    assert [e["timestamp"] for e in stitched.data["events"]] == ["00:05", "10:03", "20:03"]
