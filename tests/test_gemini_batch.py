"""Gemini's batch mode through the real google-genai SDK against FakeGemini's Batch API: the
endpoints themselves, then whole runs through runpipe.Engine with ``batch: true``."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from runpipe.paths import user_dir
from runpipe.store import RunStore
from runpipe.testing import make_engine, tone_wav
from runpipe.testing.gemini_server import Answer, BatchLifecycle, FakeGemini, HttpError, RawText

MODEL = "gemini-3.8-flash"
SECONDS = (1, 2, 3, 4)  # one input per length: the fake tells the inputs apart by their audio
#: Fast polling, tiny backoff. The settle time is what lets the four inputs' requests meet in one
#: job: each arrives after its input was normalized, and on a busy 2-core machine (load 12) those
#: arrivals were seen more than 1 s apart, which split the batch in two; 5 s keeps them together.
FAST = {"retry_base_delay": 0.01, "retry_max_delay": 5.0, "file_poll_interval": 0.01, "batch_poll_interval": 0.02, "batch_settle": 5.0}


def transcript(seconds: int) -> dict:
    return {
        "summary": f"A tone of {seconds} s.",
        "segments": [{"speaker": "Speaker 1", "timestamp": "00:00", "content": f"Tone number {seconds}.", "language": "English",
                      "language_code": "en", "translation": "", "emotion": "neutral"}],
    }


def lasting(seconds: int):
    """A script_for predicate: the request's audio lasts ``seconds``."""
    return lambda request: [round(s or 0) for s in request.audio_seconds] == [seconds]


@pytest.fixture
def server(monkeypatch):
    with FakeGemini() as fake:
        monkeypatch.setenv("GEMINI_API_KEY", fake.api_key)
        yield fake


@pytest.fixture
def inputs(tmp_path) -> list[str]:
    folder = tmp_path / "in"
    folder.mkdir()
    return [str(tone_wav(folder / f"tone{s}.wav", s, freq=300 + 100 * s)) for s in SECONDS]


def pipeline(server: FakeGemini, **options) -> dict:
    gemini = {"base_url": server.base_url, "batch": True, **FAST, **options}
    return {
        "name": "batch",
        "stages": {
            "analyze": {"backend": "gemini", "tasks": [{"prompt": "transcript"}], "backends": {"gemini": gemini}},
            "export": {"formats": ["json"]},
        },
    }


def run(server: FakeGemini, inputs: list[str], out: Path, **options):
    """One run in a fresh engine, with as many threads as inputs so that all of them wait together."""
    with make_engine() as engine:
        result = engine.run(engine.load_dict(pipeline(server, **options)), inputs, output_dir=out, concurrency=len(inputs))
    return {Path(r.item.uri).stem: r for r in result.inputs}


def summaries(results) -> dict[str, str | None]:
    return {name: (r.documents[0].summary if r.documents else None) for name, r in results.items()}


EXPECTED = {f"tone{s}": f"A tone of {s} s." for s in SECONDS}


def stored_batch_entries() -> int:
    store = RunStore(user_dir() / "runs.sqlite")
    try:
        return store.counts().get("gemini_batch", 0)
    finally:
        store.close()


# -- the endpoints, through the SDK --------------------------------------------------------------


def sdk(server: FakeGemini) -> genai.Client:
    return genai.Client(api_key=server.api_key, vertexai=False, http_options=types.HttpOptions(base_url=server.base_url))


def inlined(audio: bytes, mime_type: str = "audio/wav") -> types.InlinedRequest:
    contents = [types.Content(role="user", parts=[types.Part.from_bytes(data=audio, mime_type=mime_type), types.Part(text="Transcribe.")])]
    config = types.GenerateContentConfig(response_mime_type="application/json", max_output_tokens=1000, system_instruction="Be careful.")
    return types.InlinedRequest(model=MODEL, contents=contents, config=config)


def test_batch_job_lifecycle_answers_and_per_request_errors(server, tmp_path):
    wav = tone_wav(tmp_path / "a.wav", 2).read_bytes()
    server.script_batches(BatchLifecycle(pending_polls=2, running_polls=3))
    server.script(Answer({"n": 1}), HttpError(429, "Quota."))
    client = sdk(server)
    job = client.batches.create(model=MODEL, src=[inlined(wav), inlined(wav), inlined(b"not audio")], config={"display_name": "t"})
    assert job.state == types.JobState.JOB_STATE_PENDING and not job.done and job.display_name == "t"

    states = []
    while not job.done:
        job = client.batches.get(name=job.name)
        states.append(job.state.name)
    assert states == ["JOB_STATE_PENDING"] * 2 + ["JOB_STATE_RUNNING"] * 3 + ["JOB_STATE_SUCCEEDED"]
    first, quota, undecodable = job.dest.inlined_responses
    assert first.response.text == '{"n": 1}' and first.response.usage_metadata.prompt_token_count > 64  # 2 s of audio
    assert (quota.error.code, quota.error.message) == (8, "Quota.")  # google.rpc RESOURCE_EXHAUSTED
    assert undecodable.error.code == 3 and "could not be decoded" in undecodable.error.message
    (create,) = server.requests_to("batches.create")
    assert create.path == f"/v1/models/{MODEL}:batchGenerateContent"
    request = create.body["batch"]["inputConfig"]["requests"]["requests"][0]["request"]
    assert request["systemInstruction"]["parts"][0]["text"] == "Be careful." and request["generationConfig"]["maxOutputTokens"] == 1000


def test_batch_list_cancel_delete_and_strict_bodies(server, tmp_path):
    wav = tone_wav(tmp_path / "a.wav", 1).read_bytes()
    server.default_response = Answer({"ok": True})
    server.script_batches(BatchLifecycle(pending_polls=100), BatchLifecycle(outcome="FAILED", error_message="Out of capacity."))
    client = sdk(server)
    waiting = client.batches.create(model=MODEL, src=[inlined(wav)])
    failing = client.batches.create(model=MODEL, src=[inlined(wav)])
    assert [j.name for j in client.batches.list(config={"page_size": 1})] == [waiting.name, failing.name]  # two pages

    client.batches.cancel(name=waiting.name)
    assert client.batches.get(name=waiting.name).state == types.JobState.JOB_STATE_CANCELLED
    while not (failing := client.batches.get(name=failing.name)).done:
        pass
    assert failing.state == types.JobState.JOB_STATE_FAILED and failing.dest is None
    client.batches.delete(name=failing.name)
    with pytest.raises(genai_errors.ClientError) as gone:
        client.batches.get(name=failing.name)
    assert gone.value.code == 404 and server.batch_names == [waiting.name]

    # Field names inside inlined requests are checked as in generateContent (the SDK never sends
    # unknown ones, so this goes raw): the whole job is refused, as the protobuf parser would.
    bad = {"batch": {"inputConfig": {"requests": {"requests": [{"request": {"contents": [{"parts": [{"text": "hi"}]}], "bogus": 1}}]}}}}
    request = urllib.request.Request(
        f"{server.base_url}/v1beta/models/{MODEL}:batchGenerateContent", data=json.dumps(bad).encode(), method="POST",
        headers={"x-goog-api-key": server.api_key, "Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request)
    assert refused.value.code == 400
    assert 'Unknown name "bogus" at \'batch.input_config.requests.requests[0].request\'' in json.loads(refused.value.read())["error"]["message"]


# -- batch mode through the engine ---------------------------------------------------------------


def test_inputs_share_one_batch_job_and_each_gets_its_own_answer(server, inputs, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="runpipe.plugins.gemini")
    server.script_batches(BatchLifecycle(pending_polls=2, running_polls=2))
    for s in SECONDS:
        server.script_for(lasting(s), Answer(transcript(s)))
    results = run(server, inputs, tmp_path / "out")

    assert summaries(results) == EXPECTED
    (create,) = server.requests_to("batches.create")
    assert len(create.body["batch"]["inputConfig"]["requests"]["requests"]) == len(SECONDS)
    assert len(server.requests_to("batches.get")) == 5 and not server.requests_to("generateContent")
    job = server.batch_names[0]
    assert {r.documents[0].provenance["batch_job"] for r in results.values()} == {job}
    states = [m.split(": ")[-1] for m in caplog.messages if m.startswith(f"batch job {job}: ")]
    assert states == ["JOB_STATE_PENDING", "JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED"]


def test_a_failed_request_fails_only_its_input_and_a_broken_answer_is_repaired_directly(server, inputs, tmp_path):
    server.script_for(lasting(1), Answer(transcript(1)))
    server.script_for(lasting(2), HttpError(400, "Audio not supported."))
    server.script_for(lasting(3), RawText('{"summary": "cut'), Answer(transcript(3)))  # the second answers the repair
    server.script_for(lasting(4), Answer(transcript(4)))
    results = run(server, inputs, tmp_path / "out")

    assert {name: r.status for name, r in results.items()} == {"tone1": "done", "tone2": "failed", "tone3": "done", "tone4": "done"}
    assert "could not answer this request (code 3): Audio not supported." in results["tone2"].error
    assert summaries(results)["tone3"] == EXPECTED["tone3"]
    assert len(server.requests_to("batches.create")) == 1
    (repair,) = server.requests_to("generateContent")  # the repair went directly, with the broken answer quoted
    assert repair.body["contents"][1]["parts"][0]["text"] == '{"summary": "cut'


def test_a_failed_job_fails_its_inputs_as_retryable_and_is_forgotten(server, inputs, tmp_path):
    server.script_batches(BatchLifecycle(outcome="FAILED"))
    server.default_response = Answer(transcript(1))
    results = run(server, inputs[:2], tmp_path / "out")
    assert all(r.status == "failed" and "ended in state JOB_STATE_FAILED" in r.error for r in results.values())
    assert stored_batch_entries() == 0  # a rerun submits again


@pytest.mark.parametrize("media", ["inline", "uploaded"])
def test_a_rerun_collects_the_stored_job_instead_of_submitting_again(server, inputs, tmp_path, media):
    options = {"inline_limit_bytes": 0} if media == "uploaded" else {}
    server.script_batches(BatchLifecycle(pending_polls=15, running_polls=5))
    for s in SECONDS:
        server.script_for(lasting(s), Answer(transcript(s)))
    first = run(server, inputs, tmp_path / "out", batch_max_wait=0.05, **options)  # gives up while the job runs
    assert all(r.status == "failed" and "run again to collect" in r.error for r in first.values())
    (job,) = server.batch_names
    polls_before = len(server.requests_to("batches.get"))
    assert stored_batch_entries() == len(SECONDS)  # written right after submitting: what survives a crash
    if media == "uploaded":
        assert len(server.file_names) == len(SECONDS)  # kept: the unfinished job reads them

    second = run(server, inputs, tmp_path / "out", **options)  # a fresh engine: only the run store remembers the job
    assert summaries(second) == EXPECTED
    assert len(server.requests_to("batches.create")) == 1  # nothing submitted again
    assert len(server.requests_to("batches.get")) == 21 and polls_before < 21
    assert {r.path for r in server.requests_to("batches.get")} == {f"/v1beta/{job}"}
    assert stored_batch_entries() == 0  # answered: the engine caches the analyses now
    if media == "uploaded":  # the same files, so the same requests: found in the store
        assert len(server.requests_to("upload.start")) == len(SECONDS) and server.file_names == []


def test_a_stored_job_that_is_gone_is_submitted_again(server, inputs, tmp_path):
    server.script_batches(BatchLifecycle(pending_polls=1000))
    for s in SECONDS:
        server.script_for(lasting(s), Answer(transcript(s)), Answer(transcript(s)))
    run(server, inputs[:2], tmp_path / "out", batch_max_wait=0.05)
    (gone,) = server.batch_names
    client = sdk(server)  # kept in a variable: a Client closes its connection when collected
    client.batches.delete(name=gone)

    again = run(server, inputs[:2], tmp_path / "out")
    assert summaries(again) == {"tone1": EXPECTED["tone1"], "tone2": EXPECTED["tone2"]}
    assert len(server.requests_to("batches.create")) == 2 and gone not in server.batch_names


def test_batch_results_equal_direct_results(server, inputs, tmp_path):
    for s in SECONDS:
        server.script_for(lasting(s), Answer(transcript(s)), Answer(transcript(s)))
    direct = run(server, inputs, tmp_path / "direct", batch=False)
    batched = run(server, inputs, tmp_path / "batched")
    assert len(server.requests_to("generateContent")) == len(SECONDS) and len(server.requests_to("batches.create")) == 1

    def comparable(result):
        (document,) = result.documents
        volatile = {"response_id", "batch_job"}  # a new id per answer; the job only in batch mode
        return document.answer, document.segments, document.usage, {k: v for k, v in document.provenance.items() if k not in volatile}

    assert {n: comparable(r) for n, r in batched.items()} == {n: comparable(r) for n, r in direct.items()}
    for name in direct:
        assert (tmp_path / "direct" / f"{name}.json").exists() and (tmp_path / "batched" / f"{name}.json").exists()


def test_uploaded_audio_travels_as_file_references_and_uploads_are_deleted_after(server, inputs, tmp_path):
    for s in SECONDS:
        server.script_for(lasting(s), Answer(transcript(s)))
    results = run(server, inputs, tmp_path / "out", inline_limit_bytes=0)  # every file is uploaded

    assert summaries(results) == EXPECTED
    (create,) = server.requests_to("batches.create")
    parts = [r["request"]["contents"][0]["parts"][0] for r in create.body["batch"]["inputConfig"]["requests"]["requests"]]
    assert all("fileData" in part and "inlineData" not in part for part in parts) and create.size < 20_000
    assert len(server.requests_to("upload.start")) == len(SECONDS) and server.file_names == []  # deleted at close


def test_a_job_is_cut_before_it_outgrows_one_request_body(server, inputs, tmp_path, monkeypatch):
    monkeypatch.setattr("runpipe.plugins.gemini.batch.JOB_BODY_LIMIT", 20_000)  # the 4 clips take ~40 kB
    for s in SECONDS:
        server.script_for(lasting(s), Answer(transcript(s)))
    results = run(server, inputs, tmp_path / "out")

    assert summaries(results) == EXPECTED
    creates = server.requests_to("batches.create")
    assert len(creates) > 1 and all(c.size < 21_000 for c in creates)  # the limit counts requests, not the envelope
    assert sum(len(c.body["batch"]["inputConfig"]["requests"]["requests"]) for c in creates) == len(SECONDS)
