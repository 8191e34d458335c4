"""Kill -9 and resume, through the real CLI in a subprocess, against FakeGemini in this process.

Three inputs (the 39 s sample at three loudnesses, so their contents differ), chunked into three
windows each (``chunking.max_seconds: 15``), plus one broken input; one input at a time, so the
server's request log says exactly what was finished when the process died. Uploads are forced
(``inline_limit_bytes: 1000``) so the Files API path, and reuse of a killed run's uploads, are
exercised. The rerun's requests are counted: every window that was answered before the kill must
not be asked again, and every upload that finished and is still valid must not be uploaded again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import ffmpeg as ffmpeg_python
import pytest

from conftest import SAMPLE, wait_for
from runpipe import ffmpeg
from runpipe.paths import user_dir
from runpipe.testing.gemini_server import Answer, FakeGemini

SEGMENT = {"speaker": "Speaker 1", "timestamp": "00:05", "content": "Words.", "language": "English",
           "language_code": "en", "translation": "", "emotion": "neutral"}
WINDOW_ANSWER = {"summary": "A part.", "segments": [SEGMENT]}  # one segment inside each window's own stretch
INPUTS = ("one.ogg", "two words.ogg", "three.ogg")
WINDOWS_PER_INPUT = 3
ALL_WINDOWS = len(INPUTS) * WINDOWS_PER_INPUT


class SlowUploads(FakeGemini):
    """FakeGemini whose upload chunks take ``upload_delay`` seconds to be accepted (the request
    has arrived and the upload session is open, but the file does not exist yet)."""

    upload_delay = 0.0

    def _upload_chunk(self, query, headers, raw):
        if self.upload_delay:
            time.sleep(self.upload_delay)
        return super()._upload_chunk(query, headers, raw)


@pytest.fixture
def server(monkeypatch):
    for name in ("GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL", "GOOGLE_GENAI_API_VERSION", "GOOGLE_GENAI_USE_VERTEXAI"):
        monkeypatch.delenv(name, raising=False)
    with SlowUploads() as fake:
        yield fake


@pytest.fixture
def job(tmp_path, server):
    """Inputs, a pipeline file pointing at the server, and a function running the CLI."""
    folder = tmp_path / "in"
    folder.mkdir()
    for name, gain in zip(INPUTS, ("1.0", "0.8", "0.6")):
        quieter = ffmpeg_python.input(str(SAMPLE)).filter("volume", gain)
        ffmpeg.run(quieter.output(str(folder / name), ar=16000, ac=1, **{"c:a": "libvorbis"}))
    (folder / "broken.ogg").write_text("this is not audio\n")
    inputs = [folder / name for name in (*INPUTS, "broken.ogg")]
    spec = {
        "name": "resume",
        "concurrency": 1,
        "stages": {
            "analyze": {
                "backend": "gemini",
                # one window at a time, so where a kill lands is known
                "chunking": {"max_seconds": 15, "overlap_seconds": 1, "parallel": 1},
                "backends": {"gemini": {"base_url": server.base_url, "inline_limit_bytes": 1000, "file_poll_interval": 0.01,
                                        "retry_base_delay": 0.01, "max_retries": 1}},
                "tasks": [{"prompt": "transcript"}],
            },
            "export": {"formats": ["json", "srt"]},
        },
    }
    pipeline_file = tmp_path / "resume.yaml"
    pipeline_file.write_text(json.dumps(spec))  # JSON is YAML
    env = {**os.environ, "GEMINI_API_KEY": server.api_key, "RUNPIPE_DISABLE_PLUGIN_AUTOLOAD": "1"}
    out = tmp_path / "out"

    def cli(*args: str) -> list[str]:
        return [sys.executable, "-m", "runpipe", *args]

    def run(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(cli(str(pipeline_file), *map(str, inputs), "-o", str(out), "--json", "--no-progress", *extra),
                              env=env, capture_output=True, text=True, timeout=120)

    def start() -> subprocess.Popen:
        return subprocess.Popen(cli(str(pipeline_file), *map(str, inputs), "-o", str(out), "--json", "--no-progress"),
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def command(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(cli(*args), env=env, capture_output=True, text=True, timeout=60)

    return type("Job", (), {"run": staticmethod(run), "start": staticmethod(start), "command": staticmethod(command),
                            "inputs": inputs, "out": out})


def kill(process: subprocess.Popen) -> None:
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(timeout=10) == -signal.SIGKILL


def file_name(request) -> str:
    """``files/...`` named by a generateContent request's media part."""
    return "files/" + request.body["contents"][0]["parts"][0]["fileData"]["file_uri"].rsplit("/", 1)[-1]


def counts(server, since: int = 0) -> dict[str, int]:
    found: dict[str, int] = {}
    for request in server.requests[since:]:
        found[request.endpoint] = found.get(request.endpoint, 0) + 1
    return found


def check_complete(job, summary: dict) -> None:
    """All good inputs done with every window's segment; the broken one failed, named; no leftovers."""
    by_name = {Path(i["input"]).name: i for i in summary["inputs"]}
    assert by_name["broken.ogg"]["status"] == "failed" and "broken.ogg: normalize failed" in by_name["broken.ogg"]["error"]
    assert "not readable as audio" in by_name["broken.ogg"]["error"]
    for name in INPUTS:
        assert by_name[name]["status"] == "done", by_name[name]["error"]
        data = json.loads((job.out / (Path(name).stem + ".json")).read_text())
        assert len(data["segments"]) == WINDOWS_PER_INPUT, data["segments"]
        assert (job.out / (Path(name).stem + ".srt")).read_text().count("-->") == WINDOWS_PER_INPUT
    assert sorted(p.name for p in job.out.iterdir()) == sorted(f"{Path(n).stem}.{s}" for n in INPUTS for s in ("json", "srt"))
    assert not [p for folder in (job.out, user_dir()) for p in folder.rglob("*") if ".part" in p.name]


@pytest.mark.local_models  # the retime step re-times the answer with Whisper
def test_kill_mid_analysis_then_rerun_repeats_nothing(job, server):
    inputs_before = {p: p.read_bytes() for p in job.inputs}
    server.default_response = Answer(WINDOW_ANSWER, delay=1.0)
    process = job.start()
    # one window at a time: when the 5th generateContent arrives, windows 1-4 are answered and stored
    wait_for(lambda: len(server.requests_to("generateContent")) == 5, "the fifth window's request")
    time.sleep(0.3)
    kill(process)
    killed = server.requests
    asked = server.requests_to("generateContent")
    in_flight = file_name(asked[4])
    assert len(asked) == 5 and len(server.requests_to("upload.start")) == 5
    assert in_flight in server.file_names  # uploaded, and never deleted: the process was killed
    # the first input (windows 1-3) was finished and exported; nothing of the second, not even a part
    assert sorted(p.name for p in job.out.iterdir()) == ["one.json", "one.srt"]

    server.default_response = Answer(WINDOW_ANSWER)
    rerun = job.run()
    assert rerun.returncode == 1, rerun.stderr  # the broken input fails; every other one finishes
    check_complete(job, json.loads(rerun.stdout))
    again = counts(server, since=len(killed))
    # 9 windows: 4 answered before the kill, so exactly 5 are asked now (the in-flight one again)
    assert again["generateContent"] == ALL_WINDOWS - 4
    # the in-flight window's upload was still valid: checked with files.get and reused, not uploaded
    assert again["upload.start"] == ALL_WINDOWS - 5
    first_rerun_request = server.requests_to("generateContent")[5]
    assert file_name(first_rerun_request) == in_flight
    # nothing transcoded again either: the normalized files and window slices were kept
    assert {p: p.read_bytes() for p in job.inputs} == inputs_before

    # status: the killed run never finished; the rerun has per-input status, errors and timings
    runs = json.loads(job.command("status", "--json").stdout)
    assert [r["status"] for r in runs[:2]] == ["failed", "interrupted"]  # the killed run is seen to be gone
    rows = json.loads(job.command("status", runs[0]["id"], "--json").stdout)
    by_name = {Path(r["uri"]).name: r for r in rows}
    assert by_name["broken.ogg"]["status"] == "failed" and by_name["broken.ogg"]["stage"] == "normalize"
    assert "not readable as audio" in by_name["broken.ogg"]["error"]
    for name in INPUTS:
        row = by_name[name]
        assert row["status"] == "done" and row["error"] is None and row["tokens"]
        assert set(row["timings"]) == {"normalize", "analyze", "postprocess", "export"}
        assert len(row["outputs"]) == 2

    # --force transcodes and asks every window again; cache clear forgets the stored answers
    normalized = {p: p.stat().st_mtime_ns for p in (user_dir() / "normalized").glob("*.ogg")}
    assert len(normalized) == len(INPUTS)
    before = len(server.requests)
    forced = job.run("--force")
    assert forced.returncode == 1 and counts(server, since=before)["generateContent"] == ALL_WINDOWS
    assert all(p.stat().st_mtime_ns != stamp for p, stamp in normalized.items())
    check_complete(job, json.loads(forced.stdout))
    before = len(server.requests)
    assert job.run().returncode == 1 and counts(server, since=before).get("generateContent", 0) == 0
    cleared = job.command("cache", "clear")
    assert cleared.returncode == 0 and "cleared" in cleared.stdout
    before = len(server.requests)
    after_clear = job.run()
    assert after_clear.returncode == 1 and counts(server, since=before)["generateContent"] == ALL_WINDOWS
    check_complete(job, json.loads(after_clear.stdout))


@pytest.mark.local_models  # the retime step re-times the answer with Whisper
def test_kill_mid_upload_then_rerun_repeats_nothing(job, server):
    server.default_response = Answer(WINDOW_ANSWER)
    server.upload_delay = 2.0
    process = job.start()
    # when the 5th window's upload chunk has arrived, windows 1-4 are uploaded and answered
    wait_for(lambda: len(server.requests_to("upload.chunk")) == 5, "the fifth upload")
    time.sleep(0.3)
    kill(process)
    killed = len(server.requests)
    assert len(server.requests_to("generateContent")) == 4
    server.upload_delay = 0.0
    time.sleep(2.0)  # let the killed upload's handler finish
    killed_files = set(server.file_names)

    rerun = job.run()
    assert rerun.returncode == 1, rerun.stderr
    check_complete(job, json.loads(rerun.stdout))
    again = counts(server, since=killed)
    assert again["generateContent"] == ALL_WINDOWS - 4  # the 4 answered windows are not asked again
    assert again["upload.start"] == ALL_WINDOWS - 4  # the interrupted upload starts over; no finished one is repeated
    rerun_files = {file_name(r) for r in server.requests_to("generateContent")[4:]}
    assert not rerun_files & killed_files
