"""GeminiBackend through the real google-genai SDK, over HTTP, against FakeGemini."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import pytest

from runpipe.errors import BackendError, BackendUnavailable, PipelineConfigError
from runpipe.model import AudioFile, MediaItem, Task, TimeRange
from runpipe.paths import builtin_schemas_dir
from runpipe.plugins.gemini import GeminiBackend
from runpipe.plugins.gemini.errors import GeminiAnswerError
from runpipe.plugins.gemini.response import find_repetition_loop
from runpipe.plugins.gemini.schema import response_json_schema
from runpipe.testing.gemini_server import (
    Answer,
    Disconnect,
    FakeGemini,
    FileLifecycle,
    HttpError,
    RawText,
    repetition_loop,
    truncated,
    noise_wav,
)
from runpipe.testing import tone_wav

SCHEMA = json.loads((builtin_schemas_dir() / "transcript.schema.json").read_text())
GOOD = {
    "summary": "A tone.",
    "segments": [
        {"speaker": "Speaker 1", "timestamp": "00:01", "content": "Hello there.", "language": "English",
         "language_code": "en", "translation": "", "emotion": "neutral"},
    ],
}
#: Options that keep tests fast: tiny backoff and upload polling.
FAST = {"retry_base_delay": 0.01, "retry_max_delay": 5.0, "file_poll_interval": 0.01}


@pytest.fixture
def server(monkeypatch, tmp_path):
    monkeypatch.setenv("RUNPIPE_USER_PATH", str(tmp_path / "user"))
    for name in ("GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL", "GOOGLE_GENAI_API_VERSION", "GOOGLE_GENAI_USE_VERTEXAI"):
        monkeypatch.delenv(name, raising=False)
    with FakeGemini() as fake:
        monkeypatch.setenv("GEMINI_API_KEY", fake.api_key)
        yield fake


@pytest.fixture
def backends(server):
    """Make backends pointed at the server; all are closed at the end."""
    made: list[GeminiBackend] = []

    def make(**options) -> GeminiBackend:
        backend = GeminiBackend({"base_url": server.base_url, **FAST, **options})
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


def local_audio(tmp_path: Path, seconds: float = 3.0, *, noise: bool = False, name: str = "talk.wav") -> AudioFile:
    path = tmp_path / name
    (noise_wav if noise else tone_wav)(path, seconds)
    return AudioFile(
        source=MediaItem(str(path), "file", name), path=path, mime_type="audio/x-wav",
        duration=seconds, content_hash=f"hash-{name}-{seconds}",
    )


def transcript_task(name: str = "transcript", **changes) -> Task:
    values = dict(name=name, prompt="Transcribe the audio.", schema_name="transcript", schema=SCHEMA,
                  system_instruction="You are a careful transcriber.")
    values.update(changes)
    return Task(**values)


def generate_requests(server: FakeGemini):
    return server.requests_to("generateContent")


# -- media -------------------------------------------------------------------------------------


def test_small_file_goes_inline_with_schema_prompt_and_budgets(server, backends, tmp_path):
    server.script(Answer(GOOD, thoughts_tokens=7))
    analysis = backends(max_output_tokens=2000, thinking="medium").analyze(local_audio(tmp_path), transcript_task())

    assert analysis.data == GOOD and analysis.backend == "gemini" and analysis.model == "gemini-3.8-flash"
    assert analysis.provenance["media"] == "inline" and analysis.provenance["attempts"] == 1
    assert analysis.provenance["finish_reason"] == "STOP" and analysis.provenance["response_id"]
    assert analysis.usage.audio_tokens == 96 and analysis.usage.thinking_tokens == 7 and analysis.usage.requests == 1
    assert analysis.usage.prompt_tokens == analysis.usage.audio_tokens + analysis.usage.text_tokens
    (request,) = generate_requests(server)
    parts = request.body["contents"][0]["parts"]
    assert parts[0]["inlineData"]["mime_type"] == "audio/wav"  # audio/x-wav renamed to what Gemini takes
    assert parts[1]["text"] == "Transcribe the audio."
    assert request.body["systemInstruction"]["parts"][0]["text"] == "You are a careful transcriber."
    config = request.body["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["maxOutputTokens"] == 2000 + 8192  # answer budget + the reserve for medium thinking
    assert config["thinkingConfig"] == {"thinking_level": "MEDIUM"}  # a level, no budget, for Gemini 3
    assert "$schema" not in config["responseJsonSchema"]
    assert config["responseJsonSchema"]["properties"]["segments"]["items"]["required"] == SCHEMA["properties"]["segments"]["items"]["required"]
    assert not server.requests_to("upload.start")


def test_file_over_the_inline_limit_is_uploaded_not_inlined(server, backends, tmp_path):
    audio = local_audio(tmp_path, 660, noise=True)  # 21 MB of noise: inline up to 100 MB, so lower the limit
    assert audio.path.stat().st_size > 20_000_000
    server.script(Answer(GOOD))
    analysis = backends(inline_limit_bytes=20_000_000).analyze(audio, transcript_task())

    assert analysis.data == GOOD and analysis.provenance["media"] == "file"
    (start,) = server.requests_to("upload.start")
    assert start.headers["x-goog-upload-header-content-type"] == "audio/wav"
    assert sum(r.size for r in server.requests_to("upload.chunk")) == audio.path.stat().st_size
    assert server.file_bytes(analysis.provenance["file_name"]) == audio.path.read_bytes()
    (request,) = generate_requests(server)
    media = request.body["contents"][0]["parts"][0]
    assert "inlineData" not in media and media["fileData"]["file_uri"].endswith(analysis.provenance["file_name"])
    assert request.size < 100_000
    assert analysis.usage.audio_tokens == 660 * 32


def test_upload_waits_while_processing(server, backends, tmp_path):
    server.script_uploads(FileLifecycle(processing_polls=4))
    server.script(Answer(GOOD))
    backends(inline_limit_bytes=0).analyze(local_audio(tmp_path), transcript_task())
    endpoints = [r.endpoint for r in server.requests]
    # the timeline request hears the same uploaded file
    assert endpoints == ["upload.start", "upload.chunk", *["files.get"] * 5, "generateContent", "transcribe"]


def test_failed_upload_is_a_clear_error_and_nothing_is_generated(server, backends, tmp_path):
    server.script_uploads(FileLifecycle(processing_polls=1, outcome="FAILED", error_message="Audio could not be decoded."))
    with pytest.raises(BackendError) as caught:
        backends(inline_limit_bytes=0).analyze(local_audio(tmp_path), transcript_task())
    assert "state FAILED: Audio could not be decoded." in str(caught.value)
    assert not generate_requests(server)


def test_upload_that_never_becomes_active_gives_up_after_the_timeout(server, backends, tmp_path):
    server.script_uploads(FileLifecycle(processing_polls=10_000))
    with pytest.raises(BackendError, match="still processing") as caught:
        backends(inline_limit_bytes=0, file_active_timeout=0.2).analyze(local_audio(tmp_path), transcript_task())
    assert caught.value.retryable


def test_upload_is_reused_across_tasks_and_reruns(server, backends, tmp_path):
    audio = local_audio(tmp_path)
    server.script(Answer(GOOD), Answer(GOOD), Answer(GOOD))
    first = backends(inline_limit_bytes=0, delete_uploads=False)
    first.analyze(audio, transcript_task("one"))
    first.analyze(audio, transcript_task("two"))
    first.close()
    rerun = backends(inline_limit_bytes=0, delete_uploads=False)  # a new engine: only the sqlite cache remembers
    rerun.analyze(audio, transcript_task("three"))

    assert len(server.requests_to("upload.start")) == 1
    uris = {r.body["contents"][0]["parts"][0]["fileData"]["file_uri"] for r in generate_requests(server)}
    assert len(uris) == 1 and len(server.file_names) == 1
    assert server.requests_to("files.get")[-1].time < generate_requests(server)[-1].time  # checked before reuse


def test_expired_upload_is_uploaded_again(server, backends, tmp_path):
    audio = local_audio(tmp_path)
    server.script(Answer(GOOD), Answer(GOOD))
    first = backends(inline_limit_bytes=0, delete_uploads=False)
    name = first.analyze(audio, transcript_task()).provenance["file_name"]
    first.close()
    server.expire(name)
    again = backends(inline_limit_bytes=0, delete_uploads=False).analyze(audio, transcript_task())
    assert again.provenance["file_name"] != name and len(server.requests_to("upload.start")) == 2


def test_close_deletes_uploads_by_default(server, backends, tmp_path):
    server.script(Answer(GOOD))
    backend = backends(inline_limit_bytes=0)
    name = backend.analyze(local_audio(tmp_path), transcript_task()).provenance["file_name"]
    assert server.file_names == [name]
    backend.close()
    assert server.file_names == [] and [r.path for r in server.requests_to("files.delete")] == [f"/v1beta/{name}"]


def test_window_of_local_audio_is_cut_and_offset(server, backends, tmp_path):
    server.script(Answer(GOOD))
    analysis = backends().analyze(local_audio(tmp_path, 10.0), transcript_task(), window=TimeRange(4.0, 7.0))
    assert analysis.offset == 4.0
    (request,) = generate_requests(server)
    assert analysis.usage.audio_tokens == pytest.approx(3 * 32, abs=2)  # only the 3 s window was sent
    assert request.body["contents"][0]["parts"][1]["text"] == "Transcribe the audio."  # no range in words


def test_task_time_range_is_left_to_the_engine(server, backends, tmp_path):
    # The engine slices local audio for a time-range task and calls without a window: the
    # backend must not cut (or name the range) a second time.
    server.script(Answer(GOOD))
    analysis = backends().analyze(local_audio(tmp_path), transcript_task(time_range=TimeRange(150, 209)))
    (request,) = generate_requests(server)
    assert analysis.offset == 0.0 and analysis.usage.audio_tokens == 96
    assert request.body["contents"][0]["parts"][1]["text"] == "Transcribe the audio."


def test_youtube_window_is_cut_by_video_metadata_at_low_resolution(server, backends):
    url = "https://www.youtube.com/watch?v=9hE5-98ZeCg"
    audio = AudioFile(source=MediaItem(url, "url", "talk"), path=None, mime_type="video/*", duration=None, content_hash="yt-9hE5")
    server.script(Answer(GOOD))
    analysis = backends().analyze(audio, transcript_task(), window=TimeRange(150, 209))
    (request,) = generate_requests(server)
    media, prompt = request.body["contents"][0]["parts"]
    assert media == {"fileData": {"file_uri": url}, "videoMetadata": {"start_offset": "150s", "end_offset": "209s"}}
    assert "cut to the part from 02:30 to 03:29" in prompt["text"] and "relative to the start of that part" in prompt["text"]
    assert request.body["generationConfig"]["mediaResolution"] == "MEDIA_RESOLUTION_LOW"
    assert analysis.offset == 150 and analysis.provenance["media"] == "url"
    assert not server.requests_to("upload.start")


def test_long_youtube_video_is_asked_in_windows_and_stitched(server, backends):
    url = "https://youtu.be/9hE5-98ZeCg"
    server.url_seconds[url] = 2400.0  # 40 minutes: three windows of 800 s
    audio = AudioFile(source=MediaItem(url, "url", "talk"), path=None, mime_type="video/*", duration=None, content_hash="yt-long")
    one = {"summary": "Part.", "segments": [dict(GOOD["segments"][0], timestamp="00:10")]}
    server.script(Answer(one), Answer(one), Answer(one))
    analysis = backends().analyze(audio, transcript_task())
    (count,) = server.requests_to("countTokens")
    assert count.body["contents"][0]["parts"] == [{"fileData": {"file_uri": url}}]
    clips = sorted((r.body["contents"][0]["parts"][0]["videoMetadata"] for r in generate_requests(server)), key=lambda m: float(m["start_offset"][:-1]))
    assert clips == [{"start_offset": "0s", "end_offset": "800s"}, {"start_offset": "800s", "end_offset": "1600s"}, {"start_offset": "1600s"}]
    # each window's 00:10 lands 10 s into that window, on the video's timeline
    assert [s["start"] for s in analysis.data["segments"]] == [10.0, 810.0, 1610.0]
    assert analysis.usage.requests == 3


def test_url_without_a_known_type_is_sent_without_one(server, backends):
    url = "https://example.org/stream"
    audio = AudioFile(source=MediaItem(url, "url", "stream"), path=None, mime_type="video/*", duration=None, content_hash="u")
    server.script(Answer(GOOD))
    backends().analyze(audio, transcript_task())
    (request,) = generate_requests(server)
    assert request.body["contents"][0]["parts"][0] == {"fileData": {"file_uri": url}}


# -- transient errors ----------------------------------------------------------------------------


def test_429_then_success_honours_retry_after(server, backends, tmp_path):
    server.script(HttpError(429, retry_after=1), Answer(GOOD))
    analysis = backends().analyze(local_audio(tmp_path), transcript_task())
    first, second = generate_requests(server)
    assert second.time - first.time >= 1.0
    assert analysis.data == GOOD and analysis.provenance["transport_retries"] == 1 and analysis.usage.requests == 1


def test_429_retry_info_delay_is_honoured(server, backends, tmp_path):
    server.script(HttpError(429, retry_delay=0.4), Answer(GOOD))
    backends().analyze(local_audio(tmp_path), transcript_task())
    first, second = generate_requests(server)
    assert second.time - first.time >= 0.4


def test_429_asking_for_longer_than_retry_max_delay_fails_at_once(server, backends, tmp_path):
    server.script(HttpError(429, retry_after=3600), Answer(GOOD))
    with pytest.raises(BackendError, match="asked to wait 3600 s") as caught:
        backends().analyze(local_audio(tmp_path), transcript_task())
    assert caught.value.retryable and len(generate_requests(server)) == 1


def test_500_then_success(server, backends, tmp_path):
    server.script(HttpError(500), HttpError(503), Answer(GOOD))
    analysis = backends().analyze(local_audio(tmp_path), transcript_task())
    assert analysis.data == GOOD and analysis.provenance["transport_retries"] == 2
    assert len(generate_requests(server)) == 3


def test_dropped_connection_and_timeout_are_retried(server, backends, tmp_path):
    server.script(Disconnect(), Answer(GOOD, delay=2.0), Answer(GOOD))
    analysis = backends(request_timeout=0.5).analyze(local_audio(tmp_path), transcript_task())
    assert analysis.data == GOOD and analysis.provenance["transport_retries"] == 2
    assert len(generate_requests(server)) == 3


def test_persistent_5xx_gives_up_after_max_retries(server, backends, tmp_path):
    server.script(*[HttpError(500)] * 3)
    with pytest.raises(BackendError, match=r"failed after 3 attempt\(s\) \(500 INTERNAL\)") as caught:
        backends(max_retries=2).analyze(local_audio(tmp_path), transcript_task())
    assert caught.value.retryable and len(generate_requests(server)) == 3


def test_400_is_not_retried_and_explained(server, backends, tmp_path):
    server.script(HttpError(400, "Invalid JSON schema: unsupported keyword"), Answer(GOOD))
    with pytest.raises(BackendError) as caught:
        backends().analyze(local_audio(tmp_path), transcript_task())
    message = str(caught.value)
    assert "Gemini rejected the request (400 INVALID_ARGUMENT): Invalid JSON schema: unsupported keyword" in message
    assert "Retrying would not help" in message and not caught.value.retryable
    assert len(generate_requests(server)) == 1 and server.pending() == 1


# -- answers that need repair ------------------------------------------------------------------


def test_invalid_json_is_repaired(server, backends, tmp_path):
    server.script(RawText('{"summary": "A tone.", "segments": [}'), Answer(GOOD))
    analysis = backends().analyze(local_audio(tmp_path), transcript_task())
    assert analysis.data == GOOD and analysis.provenance["attempts"] == 2 and analysis.usage.requests == 2
    _, repair = generate_requests(server)
    roles = [c.get("role") for c in repair.body["contents"]]
    assert roles == ["user", "model", "user"]
    assert repair.body["contents"][1]["parts"][0]["text"] == '{"summary": "A tone.", "segments": [}'
    assert "not valid JSON" in repair.body["contents"][2]["parts"][0]["text"]


def test_schema_violation_is_repaired_with_the_violations_named(server, backends, tmp_path):
    wrong = {"summary": "A tone.", "segments": [{**GOOD["segments"][0], "emotion": "ecstatic"}]}
    server.script(Answer(wrong), Answer(GOOD))
    assert backends().analyze(local_audio(tmp_path), transcript_task()).data == GOOD
    note = generate_requests(server)[1].body["contents"][2]["parts"][0]["text"]
    assert "segments/0/emotion" in note and "ecstatic" in note


def test_max_tokens_cut_is_retried_with_a_larger_budget(server, backends, tmp_path):
    server.script(truncated(GOOD), Answer(GOOD))
    analysis = backends(max_output_tokens=4000, thinking_budget=100).analyze(local_audio(tmp_path), transcript_task())
    assert analysis.data == GOOD and analysis.provenance["attempts"] == 2
    first, second = generate_requests(server)
    assert [first.body["generationConfig"]["maxOutputTokens"], second.body["generationConfig"]["maxOutputTokens"]] == [4100, 8100]
    assert "cut off at the output limit" in second.body["contents"][0]["parts"][-1]["text"]
    assert len(second.body["contents"]) == 1  # the cut answer is not quoted back


def test_max_tokens_every_time_fails_with_the_raw_answer(server, backends, tmp_path):
    server.script(truncated(GOOD), truncated(GOOD), truncated(GOOD))
    with pytest.raises(GeminiAnswerError) as caught:
        backends().analyze(local_audio(tmp_path), transcript_task())
    assert caught.value.problem == "max_tokens" and "cut off at the output token limit" in str(caught.value)
    assert caught.value.raw == json.dumps(GOOD)[: len(json.dumps(GOOD)) // 2]
    assert len(generate_requests(server)) == 3  # 1 + repair_attempts (2)


def test_repetition_loop_is_detected(server, backends, tmp_path):
    loop = repetition_loop('{"summary": "A tone.", "segments": [{"speaker": "Speaker 1", "content": "', "la la ", 300)
    server.script(loop, loop)
    with pytest.raises(GeminiAnswerError) as caught:
        backends(repair_attempts=1).analyze(local_audio(tmp_path), transcript_task())
    assert caught.value.problem == "repetition_loop" and "repetition loop" in str(caught.value)
    assert caught.value.raw == loop.text
    assert "got stuck repeating" in generate_requests(server)[1].body["contents"][0]["parts"][-1]["text"]


def test_repetition_loop_detector_finds_loops_and_ignores_ordinary_text():
    assert find_repetition_loop('{"a": "' + "Thank you. " * 40 + '"}') == " Thank you."
    assert find_repetition_loop("Sure." + "a" * 250) == "a"
    ordinary = json.dumps({"segments": [{**GOOD["segments"][0], "timestamp": f"00:{i:02d}"} for i in range(60)]}, indent=2)
    assert find_repetition_loop(ordinary) is None
    assert find_repetition_loop("ha ha ha, that was funny") is None
    assert find_repetition_loop(" " * 1000) is None


# -- tokens, keys, options, threads ------------------------------------------------------------


def test_count_tokens_uses_the_count_tokens_endpoint(server, backends, tmp_path):
    tokens = backends().count_tokens(local_audio(tmp_path, 4.0), transcript_task())
    (request,) = server.requests_to("countTokens")
    assert request.path == "/v1beta/models/gemini-3.8-flash:countTokens"  # the version runpipe pins
    texts = [p["text"] for p in request.body["contents"][0]["parts"][1:]]
    assert texts == ["Transcribe the audio.", "You are a careful transcriber."]
    assert tokens == 4 * 32 + sum(-(-len(t) // 4) for t in texts)


def test_key_never_appears_in_errors_logs_or_cache(server, backends, tmp_path, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    secret = server.api_key
    server.script(HttpError(500, f"echoing {secret}"), RawText(f"not json {secret}"), RawText("still not json"), RawText(f"{{{secret}"))
    with pytest.raises(GeminiAnswerError) as caught:
        backends(inline_limit_bytes=0, delete_uploads=False).analyze(local_audio(tmp_path), transcript_task())
    assert secret not in str(caught.value) and secret not in caught.value.raw and "[redacted API key]" in caught.value.raw
    cache = tmp_path / "user" / "gemini" / "uploads.sqlite"
    assert cache.exists() and secret.encode() not in cache.read_bytes()

    monkeypatch.setenv("GEMINI_API_KEY", "wrong-key-0000")
    with pytest.raises(BackendError) as wrong:
        backends().analyze(local_audio(tmp_path), transcript_task())
    assert "did not accept the API key in GEMINI_API_KEY" in str(wrong.value)
    assert "wrong-key-0000" not in str(wrong.value)
    assert secret not in caplog.text and "wrong-key-0000" not in caplog.text
    assert "[redacted API key]" in caplog.text  # the 500's echo was logged, with the key removed


def test_missing_key_makes_the_backend_unavailable(server, monkeypatch, tmp_path):
    monkeypatch.delenv("GEMINI_API_KEY")
    assert "GEMINI_API_KEY" in GeminiBackend.unavailable_reason()
    with pytest.raises(BackendUnavailable, match="GEMINI_API_KEY"):
        GeminiBackend({}).analyze(local_audio(tmp_path), transcript_task())
    monkeypatch.setenv("GOOGLE_API_KEY", server.api_key)
    assert GeminiBackend.unavailable_reason() is None


def test_sdk_base_url_variable_keeps_working(server, monkeypatch, tmp_path):
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", server.base_url)
    server.script(Answer(GOOD))
    backend = GeminiBackend(FAST)
    try:
        assert backend.analyze(local_audio(tmp_path), transcript_task()).data == GOOD
    finally:
        backend.close()
    assert len(generate_requests(server)) == 1


def test_options_are_validated():
    with pytest.raises(PipelineConfigError, match="unknown option"):
        GeminiBackend({"max_output_token": 5})
    with pytest.raises(PipelineConfigError, match="concurrency must be an integer"):
        GeminiBackend({"concurrency": "4"})
    with pytest.raises(PipelineConfigError, match="within 65536"):
        GeminiBackend({"max_output_tokens": 65000, "thinking_budget": 1000})


def test_task_options_and_generation_override_per_request(server, backends, tmp_path):
    server.models = (*server.models, "gemini-2.5-flash")  # a key that still has a 2.5 model
    server.script(Answer(GOOD))
    task = transcript_task(model="gemini-2.5-flash", options={"thinking_budget": 0}, generation={"temperature": 0.3, "max_output_tokens": 900})
    analysis = backends().analyze(local_audio(tmp_path), task)
    (request,) = generate_requests(server)
    assert request.path == "/v1beta/models/gemini-2.5-flash:generateContent" and analysis.model == "gemini-2.5-flash"
    config = request.body["generationConfig"]
    assert config["temperature"] == 0.3 and config["maxOutputTokens"] == 900 and config["thinkingConfig"] == {"thinking_budget": 0}
    with pytest.raises(PipelineConfigError, match="apply to the whole backend"):
        backends().analyze(local_audio(tmp_path), transcript_task(options={"concurrency": 2}))


def test_task_options_the_engine_adds_are_accepted(server, backends, tmp_path):
    # runpipe.tasks gives every backend the pipeline's speaker counts and the question; they
    # travel in the prompt, and must not be refused as backend-wide options.
    server.script(Answer(GOOD))
    task = transcript_task(options={"num_speakers": 2, "min_speakers": 1, "max_speakers": 3, "question": "Who speaks?"})
    assert backends().analyze(local_audio(tmp_path), task).data == GOOD


def test_concurrency_is_bounded_across_threads(server, backends, tmp_path):
    backend = backends(concurrency=1)
    audio = local_audio(tmp_path)
    server.script(Answer(GOOD, delay=0.3), Answer(GOOD, delay=0.3))
    threads = [threading.Thread(target=backend.analyze, args=(audio, transcript_task(f"t{i}"))) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    first, second = generate_requests(server)
    assert second.time - first.time >= 0.3  # the second request waited for the first to finish


def test_a_429_holds_back_every_thread(server, backends, tmp_path):
    backend = backends(concurrency=2)
    audio = local_audio(tmp_path)
    # Thread "a" gets a 429 asking for 1 s. Thread "b" starts after that answer and never sees a
    # 429 itself, yet must wait too: without the shared gate it would be sent at once.
    server.script(HttpError(429, retry_after=1, delay=0.2), Answer(GOOD), Answer(GOOD))
    first = threading.Thread(target=backend.analyze, args=(audio, transcript_task("a")))
    first.start()
    deadline = time.monotonic() + 5
    while server.pending() == 3 and time.monotonic() < deadline:  # until the 429 is being answered
        time.sleep(0.01)
    time.sleep(0.4)  # the 429 has arrived: the gate is closed until about 1.2 s after the first request
    backend.analyze(audio, transcript_task("b"))
    first.join()
    times = [r.time for r in generate_requests(server)]
    assert len(times) == 3 and min(times[1:]) - times[0] >= 1.0


def test_schema_conversion_keeps_what_gemini_supports():
    converted = response_json_schema({
        "$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object", "examples": [{}],
        "properties": {"kind": {"const": "x", "pattern": "^x$"}, "items": {"type": "array", "items": {"type": "string", "default": ""}}},
        "required": ["kind"],
    })
    assert converted == {
        "type": "object",
        "properties": {"kind": {"enum": ["x"]}, "items": {"type": "array", "items": {"type": "string"}}},
        "required": ["kind"],
    }
