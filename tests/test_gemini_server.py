"""FakeGemini against the real google-genai SDK (and raw HTTP where the SDK would refuse first)."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

import ffmpeg as ffmpeg_python
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from runpipe import ffmpeg
from runpipe.testing.gemini_server import (
    MiB,
    Answer,
    Disconnect,
    FakeGemini,
    FileLifecycle,
    HttpError,
    RawText,
    media_duration,
    noise_wav,
)
from runpipe.testing import tone_wav

MODEL = "gemini-3.8-flash"


@pytest.fixture
def server():
    with FakeGemini() as fake:
        yield fake


def sdk(server: FakeGemini, *, key: str | None = None, api_version: str | None = None) -> genai.Client:
    options = types.HttpOptions(base_url=server.base_url, api_version=api_version)
    return genai.Client(api_key=key or server.api_key, vertexai=False, http_options=options)


def post(server: FakeGemini, path: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict, dict]:
    """Raw POST; returns (status, parsed JSON body, lower-cased headers)."""
    request = urllib.request.Request(server.base_url + path, data=body, method="POST", headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read() or b"{}"), {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}"), {k.lower(): v for k, v in error.headers.items()}


def test_inline_audio_is_decoded_counted_and_recorded(server, tmp_path):
    wav = tmp_path / "tone.wav"
    tone_wav(wav, 2.0)
    server.script(Answer({"summary": "a tone"}))
    client = sdk(server)  # keep a reference: a collected client closes its connection pool
    response = client.models.generate_content(
        model=MODEL,
        contents=[types.Part.from_bytes(data=wav.read_bytes(), mime_type="audio/wav"), "Describe."],
        config=types.GenerateContentConfig(
            system_instruction="Be brief.", response_mime_type="application/json",
            response_json_schema={"type": "object"}, thinking_config=types.ThinkingConfig(thinking_budget=0),
        ),
    )
    assert json.loads(response.text) == {"summary": "a tone"}
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    audio = [d.token_count for d in response.usage_metadata.prompt_tokens_details if d.modality == types.MediaModality.AUDIO]
    assert audio == [64]  # 2 s x 32 tokens
    (request,) = server.requests
    assert request.endpoint == "generateContent" and request.api_version == "v1" and request.authenticated
    assert request.headers["x-goog-api-key"] == "<redacted>"
    blob = request.body["contents"][0]["parts"][0]["inlineData"]
    padded = blob["data"] + "=" * (-len(blob["data"]) % 4)
    assert base64.urlsafe_b64decode(padded) == wav.read_bytes()  # the SDK's URL-safe alphabet, decoded
    assert request.body["systemInstruction"]["parts"][0]["text"] == "Be brief."


def test_both_api_versions_are_served(server):
    server.script(RawText("plain"), RawText("plain"))
    for version in ("v1", "v1beta"):
        client = sdk(server, api_version=version)
        assert client.models.generate_content(model=MODEL, contents="hi").text == "plain"
    assert [r.api_version for r in server.requests] == ["v1", "v1beta"]


def test_wrong_key_is_400_and_missing_key_is_403(server):
    client = sdk(server, key="not-the-key")
    with pytest.raises(genai_errors.ClientError) as caught:
        client.models.generate_content(model=MODEL, contents="hi")
    assert caught.value.code == 400 and "API key not valid" in caught.value.message
    assert caught.value.details["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    status, body, _ = post(server, f"/v1beta/models/{MODEL}:generateContent", b'{"contents": []}')
    assert status == 403 and body["error"]["status"] == "PERMISSION_DENIED"
    assert server.pending() == 0 and not any(r.authenticated for r in server.requests)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": {"responseMimeTyp": "x"}}, 'Unknown name "responseMimeTyp" at \'generation_config\''),
        ({"contents": [{"parts": [{"inlineData": {"mimeType": "audio/x-unknown", "data": "AAAA"}}]}]}, "Unsupported MIME type: audio/x-unknown"),
        ({"contents": [{"parts": [{"inlineData": {"mimeType": "audio/wav", "data": "AAAA"}}]}]}, "could not be decoded"),
        ({"contents": [{"parts": [{"text": "a", "fileData": {"fileUri": "https://x.test/a"}}]}]}, "oneof field 'data'"),
        ({"contents": []}, "contents is not specified"),
        ({"contents": [{"parts": [{"text": "a"}]}], "generationConfig": {"responseJsonSchema": {"type": "object"}}}, "response_mime_type"),
    ],
)
def test_requests_are_checked_like_the_real_api(server, body, expected):
    server.script(RawText("never sent"))
    status, answer, _ = post(server, f"/v1beta/models/{MODEL}:generateContent", json.dumps(body).encode(), {"x-goog-api-key": server.api_key})
    assert status == 400 and answer["error"]["status"] == "INVALID_ARGUMENT"
    assert expected in answer["error"]["message"]
    assert server.pending() == 1  # a rejected request does not use up the script


def test_snake_case_field_names_are_accepted_as_protobuf_json_does(server):
    server.script(RawText("ok"))
    body = {"contents": [{"parts": [{"text": "hi"}]}], "generation_config": {"max_output_tokens": 5, "thinking_config": {"thinking_budget": 0}}}
    status, answer, _ = post(server, f"/v1/models/{MODEL}:generateContent", json.dumps(body).encode(), {"x-goog-api-key": server.api_key})
    assert status == 200 and answer["candidates"][0]["content"]["parts"][0]["text"] == "ok"


def test_inline_requests_take_100_mb_and_batch_jobs_20_mb(server):
    assert server.inline_limit_bytes == 100_000_000
    server.script(RawText("ok"))
    body = json.dumps({"contents": [{"parts": [{"text": "x" * (21 * MiB)}]}]}).encode()  # over the old 20 MB
    status, answer, _ = post(server, f"/v1beta/models/{MODEL}:generateContent", body, {"x-goog-api-key": server.api_key})
    assert status == 200, answer
    inlined = {"request": {"contents": [{"parts": [{"text": "x" * (21 * MiB)}]}]}}
    batch = json.dumps({"batch": {"inputConfig": {"requests": {"requests": [inlined]}}}}).encode()
    status, answer, _ = post(server, f"/v1beta/models/{MODEL}:batchGenerateContent", batch, {"x-goog-api-key": server.api_key})
    assert status == 400 and "payload size exceeds the limit: 20000000 bytes" in answer["error"]["message"]
    with FakeGemini(inline_limit_bytes=1000) as small:
        status, answer, _ = post(small, f"/v1beta/models/{MODEL}:generateContent", b"{" + b" " * 2000 + b"}", {"x-goog-api-key": small.api_key})
    assert status == 400 and "payload size exceeds the limit: 1000 bytes" in answer["error"]["message"]


def test_resumable_upload_in_chunks_then_processing_then_active(server, tmp_path):
    wav = tmp_path / "long.wav"
    noise_wav(wav, 300)  # 9.6 MB: two chunks of the SDK's 8 MiB
    server.script_uploads(FileLifecycle(processing_polls=2))
    client = sdk(server)
    file = client.files.upload(file=str(wav), config=types.UploadFileConfig(mime_type="audio/wav"))
    assert file.state == types.FileState.PROCESSING and file.size_bytes == wav.stat().st_size
    assert server.file_bytes(file.name) == wav.read_bytes()
    chunks = server.requests_to("upload.chunk")
    assert [r.headers["x-goog-upload-command"] for r in chunks] == ["upload", "upload, finalize"]
    assert [r.size for r in chunks] == [8 * MiB, wav.stat().st_size - 8 * MiB]
    assert not any(r.authenticated for r in chunks)  # the upload URL's id is the credential

    states = [client.files.get(name=file.name).state for _ in range(3)]
    assert states == [types.FileState.PROCESSING, types.FileState.PROCESSING, types.FileState.ACTIVE]
    assert [f.name for f in client.files.list()] == [file.name]
    count = client.models.count_tokens(model=MODEL, contents=[types.Part.from_uri(file_uri=file.uri, mime_type="audio/wav")])
    assert count.total_tokens == 300 * 32
    client.files.delete(name=file.name)
    assert server.file_names == []
    with pytest.raises(genai_errors.ClientError) as caught:
        client.files.get(name=file.name)
    assert caught.value.code == 403  # Google's answer for files that are gone


def test_a_file_that_is_not_active_cannot_be_used_and_failed_files_say_why(server, tmp_path):
    wav = tmp_path / "a.wav"
    tone_wav(wav, 1.0)
    server.script_uploads(FileLifecycle(processing_polls=5), FileLifecycle(processing_polls=0, outcome="FAILED", error_message="bad audio"))
    client = sdk(server)
    processing = client.files.upload(file=str(wav), config=types.UploadFileConfig(mime_type="audio/wav"))
    server.script(RawText("never sent"))
    with pytest.raises(genai_errors.ClientError) as caught:
        client.models.generate_content(model=MODEL, contents=[types.Part.from_uri(file_uri=processing.uri, mime_type="audio/wav"), "hi"])
    assert caught.value.status == "FAILED_PRECONDITION"
    assert f"File {processing.name.removeprefix('files/')} is not in an ACTIVE state" in caught.value.message
    failed = client.files.upload(file=str(wav), config=types.UploadFileConfig(mime_type="audio/wav"))
    assert failed.state == types.FileState.FAILED and failed.error.message == "bad audio"


def test_upload_offsets_and_chunk_sizes_are_checked(server):
    headers = {"x-goog-api-key": server.api_key, "x-goog-upload-protocol": "resumable", "x-goog-upload-command": "start",
               "x-goog-upload-header-content-length": "10", "x-goog-upload-header-content-type": "audio/wav"}
    status, _, answer_headers = post(server, "/upload/v1beta/files", b'{"file": {"mime_type": "audio/wav"}}', headers)
    assert status == 200 and answer_headers["x-goog-upload-status"] == "active"
    path = answer_headers["x-goog-upload-url"].removeprefix(server.base_url)
    status, body, answer_headers = post(server, path, b"12345", {"x-goog-upload-command": "upload", "x-goog-upload-offset": "0"})
    assert status == 400 and "multiple of" in body["error"]["message"]
    assert answer_headers["x-goog-upload-status"] == "final"  # so the SDK stops instead of re-sending
    status, body, _ = post(server, path, b"12345", {"x-goog-upload-command": "upload, finalize", "x-goog-upload-offset": "3"})
    assert status == 400 and "Invalid upload offset 3" in body["error"]["message"]
    status, body, _ = post(server, path, b"12345", {"x-goog-upload-command": "upload, finalize", "x-goog-upload-offset": "0"})
    assert status == 400 and "5 of 10 declared bytes" in body["error"]["message"]


def test_scripted_errors_carry_retry_after_and_retry_info(server):
    server.script(HttpError(429, retry_after=3, retry_delay=2.5), HttpError(503))
    client = sdk(server)
    with pytest.raises(genai_errors.ClientError) as caught:
        client.models.generate_content(model=MODEL, contents="hi")
    assert caught.value.code == 429 and caught.value.status == "RESOURCE_EXHAUSTED"
    assert caught.value.response.headers["retry-after"] == "3"
    assert caught.value.details["error"]["details"] == [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2.5s"}]
    with pytest.raises(genai_errors.ServerError) as caught:
        client.models.generate_content(model=MODEL, contents="hi")
    assert caught.value.code == 503 and caught.value.status == "UNAVAILABLE"


def test_disconnect_and_empty_script(server):
    server.script(Disconnect())
    client = sdk(server)
    with pytest.raises(Exception) as caught:
        client.models.generate_content(model=MODEL, contents="hi")
    assert not isinstance(caught.value, genai_errors.APIError)  # a transport error, no HTTP answer
    with pytest.raises(genai_errors.APIError) as unscripted:
        client.models.generate_content(model=MODEL, contents="hi")
    assert unscripted.value.code == 501 and "no scripted response" in unscripted.value.message


def test_answers_longer_than_max_output_tokens_are_cut(server):
    server.script(Answer({"text": "x" * 400}))
    client = sdk(server)
    response = client.models.generate_content(model=MODEL, contents="hi", config=types.GenerateContentConfig(max_output_tokens=10))
    assert response.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert len(response.text) == 40


def test_count_tokens_for_inline_wav_flac_and_ogg(server, tmp_path):
    wav, flac, ogg = tmp_path / "a.wav", tmp_path / "a.flac", tmp_path / "a.ogg"
    tone_wav(wav, 5.0)
    for encoded in (flac, ogg):
        ffmpeg.run(ffmpeg_python.input(str(wav)).output(str(encoded)))
    assert media_duration(flac.read_bytes()) == pytest.approx(5.0, abs=0.01)  # from the STREAMINFO header
    assert media_duration(ogg.read_bytes()) == pytest.approx(5.0, abs=0.05)  # decoded by ffmpeg
    client = sdk(server)
    for path, mime_type in ((wav, "audio/wav"), (flac, "audio/flac"), (ogg, "audio/ogg")):
        count = client.models.count_tokens(model=MODEL, contents=[types.Part.from_bytes(data=path.read_bytes(), mime_type=mime_type), "12345678"])
        assert count.total_tokens == 5 * 32 + 2  # audio + 8 characters of text
    server.script_count_tokens(HttpError(500))
    with pytest.raises(genai_errors.ServerError):
        client.models.count_tokens(model=MODEL, contents="hi")


def test_files_expire(server, tmp_path):
    wav = tmp_path / "a.wav"
    tone_wav(wav, 1.0)
    client = sdk(server)
    file = client.files.upload(file=str(wav), config=types.UploadFileConfig(mime_type="audio/wav"))
    assert file.expiration_time is not None
    server.expire(file.name)
    with pytest.raises(genai_errors.ClientError) as caught:
        client.files.get(name=file.name)
    assert caught.value.code == 403 and "may not exist" in caught.value.message
