import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT


def runpipe(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runpipe", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def test_help_teaches():
    out = runpipe("--help", cwd=ROOT)
    assert out.returncode == 0
    for word in ("runpipe pipelines/podcast.yaml", "estimate", "export", "validate", "plugins", "GEMINI_API_KEY"):
        assert word in out.stdout


def test_validate_builtin_pipelines():
    out = runpipe("validate", *[str(p) for p in sorted((ROOT / "pipelines").glob("*.yaml"))], cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("ok: ") == 4


def test_invalid_pipeline_exit_code_and_message(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nstages:\n  analyze:\n    tasks:\n      - prompt: transcript\n        schema: [1]\n")
    out = runpipe("validate", str(bad), cwd=tmp_path)
    assert out.returncode == 2
    assert f"{bad}:6: stages.analyze.tasks[0].schema" in out.stderr
    assert "Traceback" not in out.stderr


def test_plugins_json_lists_builtins_with_hooks():
    out = runpipe("plugins", "--json", cwd=ROOT)
    data = json.loads(out.stdout)
    by_name = {p["name"]: p for p in data["plugins"]}
    assert "runpipe_register_exporters" in by_name["runpipe.plugins.exporters"]["hooks"]
    assert by_name["runpipe.plugins.exporters"]["registered"]["exporters"] == ["json", "srt", "vtt", "md", "txt"]
    assert by_name["runpipe.plugins.exporters"]["version"]


def test_estimate_without_backend_call(tmp_path):
    from conftest import SAMPLE

    out = runpipe("estimate", "podcast", str(SAMPLE), "--backend", "gemini", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    (row,) = json.loads(out.stdout)
    # two requests hear the audio: the transcript task and its timeline (Gemini 3.5 Transcribe)
    assert row["requests"] == 2 and row["audio_tokens"] == pytest.approx(row["duration_s"] * 32 * 2, abs=2)
    assert row["delivery"] == "inline" and row["request_bytes"] > row["bytes_after"]


def test_missing_input_exit_code_and_json_summary(tmp_path):
    env = {"RUNPIPE_DISABLE_PLUGIN_AUTOLOAD": "1"}
    out = runpipe("podcast", str(tmp_path / "nope.mp3"), "--json", "--backend", "local", cwd=tmp_path, env=env)
    assert out.returncode in (1, 3), out.stderr
    if out.returncode == 1:
        summary = json.loads(out.stdout)
        assert summary["ok"] is False and "no such file" in summary["inputs"][0]["error"]


def test_errors_have_no_traceback_unless_verbose(tmp_path):
    out = runpipe("no-such-pipeline.yaml", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr and "no such pipeline file" in out.stderr
    out = runpipe("-v", "no-such-pipeline.yaml", cwd=tmp_path)
    assert "Traceback" in out.stderr
