"""The main job, end to end through the CLI, against the local Gemini REST server."""

import base64
import json
import os
import subprocess
import sys

import pytest
import srt
import webvtt

from answers import TRANSCRIPT
from conftest import ROOT, sample_copy
from runpipe import ffmpeg
from runpipe.testing.gemini_server import Answer, FakeGemini


def run_cli(args, cwd, server, extra_env=None):
    env = {**os.environ, "GEMINI_API_KEY": server.api_key, "GOOGLE_GEMINI_BASE_URL": server.base_url, **(extra_env or {})}
    return subprocess.run([sys.executable, "-m", "runpipe", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.local_models  # the retime step re-times the answer with Whisper
def test_podcast_pipeline_through_the_cli(tmp_path):
    audio = sample_copy(tmp_path / "in", "my episode.ogg")
    with FakeGemini() as server:
        server.script(Answer(TRANSCRIPT))
        out = run_cli([str(ROOT / "pipelines" / "podcast.yaml"), str(audio), "--backend", "gemini",
                       "-o", str(tmp_path / "out"), "--json", "--no-progress"], tmp_path, server)
        assert out.returncode == 0, out.stderr
        (request,) = server.requests_to("generateContent")
    summary = json.loads(out.stdout)
    assert summary["ok"] and summary["inputs"][0]["backend"] == "gemini"

    # what was sent: 16 kHz mono Ogg inline, the docs' prompt, the transcript schema as JSON
    body = request.body
    parts = body["contents"][0]["parts"]
    inline = next(p for p in parts if "inlineData" in p or "inline_data" in p)
    blob = inline.get("inlineData") or inline["inline_data"]
    assert blob.get("mimeType", blob.get("mime_type")) == "audio/ogg"
    sent = tmp_path / "sent.ogg"
    sent.write_bytes(base64.urlsafe_b64decode(blob["data"] + "=" * (-len(blob["data"]) % 4)))
    info = ffmpeg.probe(sent)
    assert (info.sample_rate, info.channels) == (16000, 1)
    prompt = " ".join(p.get("text", "") for p in parts)
    assert "Provide accurate timestamps for each segment (Format: MM:SS)" in prompt
    config = body["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    schema = config.get("responseJsonSchema") or config.get("responseSchema")
    assert set(schema["properties"]) == {"summary", "segments"}
    assert schema["properties"]["segments"]["items"]["properties"]["emotion"]["enum"] == ["happy", "sad", "angry", "neutral"]

    # what was written matches the answer
    folder = tmp_path / "out"
    expected = [f"my episode.{s}" for s in ("json", "srt", "vtt", "md", "html")] + ["index.html"]  # the batch index
    assert sorted(p.name for p in folder.iterdir()) == sorted(expected)
    result = json.loads((folder / "my episode.json").read_text())
    assert result["summary"] == TRANSCRIPT["summary"]
    assert [s["content"] for s in result["segments"]] == [s["content"] for s in TRANSCRIPT["segments"]]
    assert result["usage"]["audio_tokens"] and result["usage"]["output_tokens"]
    assert result["backend"] == "gemini" and result["model"] == "gemini-3.8-flash"
    assert server.api_key not in (folder / "my episode.json").read_text()
    text = " ".join(s.content for s in srt.parse((folder / "my episode.srt").read_text()))
    assert "Welcome back to the show." in text and "Thanks for having me." in text
    captions = webvtt.read(str(folder / "my episode.vtt")).captions
    assert any(c.voice == "Speaker 2" for c in captions)
    md = (folder / "my episode.md").read_text()
    assert TRANSCRIPT["summary"] in md and "> And if someone speaks German." in md
    assert "Thanks for having me." in (folder / "my episode.html").read_text()


def test_key_missing_is_explained(tmp_path):
    audio = sample_copy(tmp_path / "in")
    out = subprocess.run([sys.executable, "-m", "runpipe", "podcast", str(audio), "--backend", "gemini"],
                         cwd=tmp_path, capture_output=True, text=True,
                         env={k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")})
    assert out.returncode == 3
    assert "GEMINI_API_KEY" in out.stderr and "Traceback" not in out.stderr
