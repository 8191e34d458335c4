"""Client-side per-minute quotas of the Gemini backend (issue 6: rate limits)."""

import threading
import time

import pytest

from answers import TRANSCRIPT
from runpipe.plugins.gemini import retry
from runpipe.testing import make_engine, tone_wav
from runpipe.testing.gemini_server import Answer, FakeGemini


def test_minute_quota_spaces_what_does_not_fit(monkeypatch):
    monkeypatch.setattr(retry.MinuteQuota, "WINDOW", 0.4)
    quota = retry.MinuteQuota(per_minute=2)
    started = time.monotonic()
    stamps = []
    threads = [threading.Thread(target=lambda: (quota.take(), stamps.append(time.monotonic() - started))) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stamps.sort()
    assert stamps[1] < 0.2 and 0.4 <= stamps[2] < 0.7 and stamps[4] >= 0.8  # 2, 2, 1 per window


def test_a_request_larger_than_the_budget_goes_alone():
    quota = retry.MinuteQuota(per_minute=100)
    started = time.monotonic()
    quota.take(500)  # an hour of audio on a small tier still gets through, by itself
    assert time.monotonic() - started < 0.1


def test_requests_per_minute_through_the_engine(tmp_path, monkeypatch):
    monkeypatch.setattr(retry.MinuteQuota, "WINDOW", 1.0)
    inputs = [str(tone_wav(tmp_path / f"t{i}.wav", 1.0, freq=300 + 50 * i)) for i in range(3)]
    with FakeGemini() as server:
        monkeypatch.setenv("GEMINI_API_KEY", server.api_key)
        server.default_response = Answer(TRANSCRIPT)
        pipeline = {"name": "q", "stages": {
            "analyze": {"backend": "gemini", "backends": {"gemini": {"base_url": server.base_url, "requests_per_minute": 2}},
                        "tasks": [{"prompt": "transcript"}]},
            "postprocess": {"steps": []}, "export": {"formats": ["json"]}}}
        with make_engine() as engine:
            result = engine.run(engine.load_dict(pipeline), inputs, output_dir=tmp_path / "out", concurrency=3)
        times = sorted(r.time for r in server.requests_to("generateContent"))
    assert result.ok
    assert len(times) == 3 and times[2] - times[0] >= 0.95  # the third waited for the window to pass


def test_quota_options_are_checked():
    from runpipe.errors import PipelineConfigError
    from runpipe.plugins.gemini.settings import GeminiSettings

    with pytest.raises(PipelineConfigError, match="requests_per_minute must be at least 1"):
        GeminiSettings.from_options({"requests_per_minute": 0})
