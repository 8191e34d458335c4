"""The Gemini API as it is today, through the real SDK against FakeGemini: current models and the
up-front model check, the documentation's optional fields, blocked prompts and safety stops,
thinking levels."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from conftest import ROOT, sample_copy
from runpipe.cli import main
from runpipe.plugins.gemini.errors import GeminiAnswerError
from runpipe.plugins.gemini.settings import DEFAULT_MODEL
from runpipe.testing.gemini_server import CURRENT_MODELS, Answer, BlockedPrompt, FakeGemini, RawText, SafetyStop
from test_gemini_backend import GOOD, backends, generate_requests, local_audio, server, transcript_task  # noqa: F401

#: The documentation's own example segment: no ``translation`` for an English segment.
DOCS_SEGMENT = {"speaker": "Speaker 1", "timestamp": "00:01", "content": "Hello there.", "language": "English",
                "language_code": "en", "emotion": "neutral"}


def cli(server, *args):
    env = {"GEMINI_API_KEY": server.api_key, "GOOGLE_GEMINI_BASE_URL": server.base_url}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


# -- models --------------------------------------------------------------------------------------


def test_default_model_is_a_current_stable_one():
    assert DEFAULT_MODEL in CURRENT_MODELS and "preview" not in DEFAULT_MODEL


def test_models_lists_what_the_key_can_use_and_marks_the_default(server):
    out = cli(server, "models", "--json")
    assert out.exit_code == 0, out.output
    listed = json.loads(out.output)
    assert [m["name"] for m in listed] == list(CURRENT_MODELS)
    assert [m["name"] for m in listed if m["default"]] == [DEFAULT_MODEL]
    out = cli(server, "models")
    assert f"{DEFAULT_MODEL}  (default)" in out.output
    assert [r.endpoint for r in server.requests] == ["models.list", "models.list"]  # one request per command


@pytest.mark.parametrize("model", ["gemini-3-flash-preview", "gemini-9-flash-typo"])
def test_a_retired_or_unknown_model_fails_up_front_in_one_line(server, tmp_path, model):
    audio = sample_copy(tmp_path / "in")
    out = cli(server, "run", str(ROOT / "pipelines" / "podcast.yaml"), str(audio), "-b", "gemini", "-m", model,
              "-o", str(tmp_path / "out"), "--no-progress")
    assert out.exit_code == 3
    (line,) = out.output.strip().splitlines()
    assert model in line and "gemini-3.8-flash" in line and "gemini-3.6-flash" in line
    assert [r.endpoint for r in server.requests] == ["models.list"]  # no audio was sent


@pytest.mark.local_models  # the podcast pipeline re-times with the offline models
def test_m_picks_another_current_model(server, tmp_path):
    from answers import TRANSCRIPT

    audio = sample_copy(tmp_path / "in")
    server.script(Answer(TRANSCRIPT))
    out = cli(server, "run", str(ROOT / "pipelines" / "podcast.yaml"), str(audio), "-b", "gemini", "-m", "gemini-3.6-flash",
              "-o", str(tmp_path / "out"), "--no-progress")
    assert out.exit_code == 0, out.output
    (request,) = generate_requests(server)
    assert request.path == "/v1beta/models/gemini-3.6-flash:generateContent"


def test_the_sdk_gets_google_s_404_for_an_unknown_model(server):
    client = genai.Client(api_key=server.api_key, http_options={"base_url": server.base_url, "api_version": "v1beta"})
    with pytest.raises(genai_errors.ClientError) as caught:
        client.models.get(model="gemini-3-flash-preview")
    assert caught.value.code == 404 and "Call ListModels" in caught.value.message
    assert client.models.get(model="gemini-flash-latest").supported_actions[0] == "generateContent"


# -- the documentation's contract ---------------------------------------------------------------------


def test_an_answer_in_the_documentation_s_shape_is_accepted_first_time(server, backends, tmp_path):
    server.script(Answer({"summary": "Hi.", "segments": [DOCS_SEGMENT]}))
    analysis = backends().analyze(local_audio(tmp_path), transcript_task())
    assert analysis.provenance["attempts"] == 1 and len(generate_requests(server)) == 1
    assert analysis.data["segments"][0]["translation"] is None  # left out: null, the same keys everywhere


def test_a_real_schema_violation_still_gets_a_bounded_repair(server, backends, tmp_path):
    broken = {"summary": "Hi.", "segments": [{k: v for k, v in DOCS_SEGMENT.items() if k != "content"}]}
    server.script(Answer(broken), Answer({"summary": "Hi.", "segments": [DOCS_SEGMENT]}))
    analysis = backends().analyze(local_audio(tmp_path), transcript_task())
    assert analysis.provenance["attempts"] == 2


# -- blocked prompts and safety stops ---------------------------------------------------------------


@pytest.mark.parametrize("blocked, said", [(BlockedPrompt("PROHIBITED_CONTENT"), "blockReason PROHIBITED_CONTENT"),
                                           (SafetyStop("SAFETY"), "finish reason SAFETY")])
def test_a_blocked_prompt_or_safety_stop_fails_once_and_says_what_to_do(server, backends, tmp_path, blocked, said):
    server.script(blocked, Answer(GOOD), Answer(GOOD))
    with pytest.raises(GeminiAnswerError) as caught:
        backends().analyze(local_audio(tmp_path), transcript_task())
    assert caught.value.problem == "blocked" and said in str(caught.value)
    assert "would be" in str(caught.value) and "time_range" in str(caught.value)
    assert len(generate_requests(server)) == 1  # no identical re-ask


@pytest.mark.parametrize("blocked, said", [(BlockedPrompt("PROHIBITED_CONTENT"), "blockReason PROHIBITED_CONTENT"),
                                           (SafetyStop("SAFETY"), "finish reason SAFETY")])
def test_a_blocked_run_fails_its_input_in_one_line_after_one_request(server, tmp_path, blocked, said):
    audio = sample_copy(tmp_path / "in")
    server.script(blocked, Answer(GOOD), Answer(GOOD))
    out = cli(server, "run", str(ROOT / "pipelines" / "podcast.yaml"), str(audio), "-b", "gemini",
              "-o", str(tmp_path / "out"), "--no-progress")
    assert out.exit_code == 1, out.output
    (failed,) = [line for line in out.output.splitlines() if line.startswith("failed")]
    assert said in failed and "the same request would be" in failed
    assert len(generate_requests(server)) == 1


def test_recitation_is_retried_then_left_to_window_splitting(server, backends, tmp_path):
    server.script(RawText("", finish_reason="RECITATION"), Answer(GOOD))
    analysis = backends().analyze(local_audio(tmp_path), transcript_task())
    assert analysis.provenance["attempts"] == 2
    server.script(*[RawText("", finish_reason="RECITATION")] * 3)
    with pytest.raises(GeminiAnswerError) as caught:
        backends().analyze(local_audio(tmp_path, 4.0), transcript_task())
    assert caught.value.problem == "recitation"  # the analyze stage splits the window for it


# -- thinking ---------------------------------------------------------------------------------------


def test_gemini_3_gets_a_thinking_level_and_the_answer_keeps_its_budget(server, backends, tmp_path):
    server.script(Answer(GOOD))
    backends(max_output_tokens=10000, thinking="high").analyze(local_audio(tmp_path), transcript_task())
    (request,) = generate_requests(server)
    config = request.body["generationConfig"]
    assert config["thinkingConfig"] == {"thinking_level": "HIGH"} and config["maxOutputTokens"] == 10000 + 16384


def test_default_thinking_is_low(server, backends, tmp_path):
    server.script(Answer(GOOD))
    backends().analyze(local_audio(tmp_path), transcript_task())
    (request,) = generate_requests(server)
    assert request.body["generationConfig"]["thinkingConfig"] == {"thinking_level": "LOW"}


def test_fake_gemini_checks_thinking_levels_as_the_api_does(server):
    client = genai.Client(api_key=server.api_key, http_options={"base_url": server.base_url})
    server.models = (*server.models, "gemini-2.5-flash")
    server.default_response = RawText("ok")

    def ask(model, **thinking):
        return client.models.generate_content(model=model, contents="hi", config=types.GenerateContentConfig(
            thinking_config=types.ThinkingConfig(**thinking)))

    assert ask("gemini-3.8-flash", thinking_level="MEDIUM").text == "ok"
    for model, thinking, said in [
        ("gemini-3.8-flash", {"thinking_level": "MEDIUM", "thinking_budget": 100}, "cannot both be set"),
        ("gemini-2.5-flash", {"thinking_level": "LOW"}, "not supported for this model"),
        ("gemini-3.8-flash", {"thinking_level": "MINIMAL"}, "MINIMAL is not supported"),  # 3.8/3.7 Flash: low-high
    ]:
        with pytest.raises(genai_errors.ClientError, match=said):
            ask(model, **thinking)


def test_fake_gemini_takes_minimal_where_the_model_does(server):
    client = genai.Client(api_key=server.api_key, http_options={"base_url": server.base_url})
    server.default_response = RawText("ok")
    config = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(thinking_level="MINIMAL"))
    assert client.models.generate_content(model="gemini-3.6-flash", contents="hi", config=config).text == "ok"


def test_a_thinking_level_the_model_refuses_fails_up_front_in_one_line(server, tmp_path):
    audio = sample_copy(tmp_path / "in")
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text((ROOT / "pipelines" / "podcast.yaml").read_text().replace(
        "analyze:", "analyze:\n    backends: {gemini: {thinking: minimal}}", 1))
    out = cli(server, "run", str(pipeline), str(audio), "-b", "gemini", "-o", str(tmp_path / "out"), "--no-progress")
    assert out.exit_code == 2, out.output
    (line,) = out.output.strip().splitlines()
    assert "gemini-3.8-flash does not take thinking minimal; it takes low, medium, high" in line
    assert not server.requests  # not even models.list


@pytest.mark.parametrize("schema_field, schema, said", [
    ("response_json_schema", {"type": "object", "properties": {"t": {"type": ["string", "null"]}}}, None),
    ("response_json_schema", {"type": "object", "properties": {"t": {"type": "STRING"}}}, "not a JSON Schema type"),
    ("response_schema", {"type": "OBJECT", "properties": {"t": {"type": "STRING", "nullable": True}}}, None),
    ("response_schema", {"type": "OBJECT", "properties": {"t": {"type": ["STRING", "NULL"]}}}, "Proto field is not repeating"),
])
def test_fake_gemini_takes_nullable_fields_the_way_each_schema_field_documents(server, schema_field, schema, said):
    import requests

    server.default_response = RawText("{}")
    key = {"response_json_schema": "responseJsonSchema", "response_schema": "responseSchema"}[schema_field]
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "generationConfig": {"responseMimeType": "application/json", key: schema}}
    answer = requests.post(f"{server.base_url}/v1beta/models/gemini-3.8-flash:generateContent", json=body,
                           headers={"x-goog-api-key": server.api_key}, timeout=30)
    if said is None:
        assert answer.status_code == 200, answer.text
    else:
        assert answer.status_code == 400 and said in answer.text


def test_bad_thinking_option_is_a_config_error():
    from runpipe.errors import PipelineConfigError
    from runpipe.plugins.gemini import GeminiBackend

    with pytest.raises(PipelineConfigError, match="thinking must be one of minimal, low, medium, high"):
        GeminiBackend({"thinking": "extreme"})


# -- ask: several questions, one upload, one cache ----------------------------------------------------


def test_ask_answers_three_questions_about_one_upload_with_one_cache(server, tmp_path):
    from runpipe.testing import tone_wav

    audio = tone_wav(tmp_path / "talk.wav", 200.0)  # 200 s = 6,400 audio tokens, above the 4,096 caching needs
    answer = {"answer": "They agree to ship on Friday.", "moments": [{"timestamp": "01:05", "quote": "let's ship Friday"}]}
    server.script(Answer(answer), Answer(answer), Answer(answer))
    out = cli(server, "ask", str(audio), "When do they ship?", "Who decides?", "Any risks?", "--json", "--no-retime")
    assert out.exit_code == 0, out.output
    result = json.loads(out.output[out.output.index("{"):])
    assert [r.endpoint for r in server.requests if r.endpoint.startswith("upload.start")] == ["upload.start"]
    (create,) = server.requests_to("caches.create")
    assert create.body["ttl"] == "600s" and create.body["systemInstruction"]  # the instruction lives in the cache
    asks = generate_requests(server)
    assert len(asks) == 3 and {r.body["cachedContent"] for r in asks} == {result["cache"]}
    assert all("fileData" not in p for r in asks for p in r.body["contents"][0]["parts"])  # the audio comes from the cache
    assert all("systemInstruction" not in r.body for r in asks)
    assert [a["question"] for a in result["answers"]] == ["When do they ship?", "Who decides?", "Any risks?"]
    cached = [a["cached_tokens"] for a in result["answers"]]  # the audio's 6,400 plus the cached system instruction
    assert len(set(cached)) == 1 and 6400 < cached[0] < 6500 and result["cached_tokens"] == sum(cached)
    assert result["answers"][0]["moments"] == [{"timestamp": "01:05", "quote": "let's ship Friday", "start": 65.0, "timing": "approximate"}]
    assert server.requests_to("caches.delete") and server.cache_names == []


def test_ask_on_short_audio_goes_without_a_cache(server, tmp_path):
    from runpipe.testing import tone_wav

    audio = tone_wav(tmp_path / "short.wav", 10.0)
    server.script(Answer({"answer": "A tone.", "moments": []}))
    out = cli(server, "ask", str(audio), "What is it?", "--json", "--no-retime")
    assert out.exit_code == 0, out.output
    assert not server.requests_to("caches.create")
    (request,) = generate_requests(server)
    assert "cachedContent" not in request.body and "fileData" in request.body["contents"][0]["parts"][0]


def test_ask_offline_says_plainly_that_answers_need_gemini(tmp_path):
    out = CliRunner().invoke(main, ["ask", str(tmp_path / "x.wav"), "What?"], env={"GEMINI_API_KEY": "", "GOOGLE_API_KEY": ""})
    assert out.exit_code == 3 and "free-form answers need Gemini" in out.output


def test_fake_gemini_caches_expire_and_refuse_what_the_api_refuses(server, tmp_path):
    from runpipe.testing import tone_wav

    client = genai.Client(api_key=server.api_key, http_options={"base_url": server.base_url, "api_version": "v1beta"})
    part = types.Part.from_bytes(data=tone_wav(tmp_path / "t.wav", 200.0).read_bytes(), mime_type="audio/wav")
    cache = client.caches.create(model="gemini-3.8-flash", config=types.CreateCachedContentConfig(contents=[part], ttl="60s"))
    assert client.caches.get(name=cache.name).usage_metadata.total_token_count == 6400
    with pytest.raises(genai_errors.ClientError, match="has to be the same"):
        client.models.generate_content(model="gemini-3.7-flash", contents="q", config=types.GenerateContentConfig(cached_content=cache.name))
    server.expire_cache(cache.name)
    with pytest.raises(genai_errors.ClientError, match="CachedContent not found"):
        client.caches.get(name=cache.name)
    small = types.Part.from_bytes(data=tone_wav(tmp_path / "s.wav", 5.0).read_bytes(), mime_type="audio/wav")
    with pytest.raises(genai_errors.ClientError, match="too small"):
        client.caches.create(model="gemini-3.8-flash", config=types.CreateCachedContentConfig(contents=[small]))


# -- the options object -------------------------------------------------------------------------------


def test_runpipe_schema_gemini_documents_every_option():
    out = CliRunner().invoke(main, ["schema", "gemini"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    properties = json.loads(out.output)["properties"]
    assert properties["model"]["default"] == DEFAULT_MODEL and properties["thinking"]["default"] == "low"
    assert properties["concurrency"]["minimum"] == 1 and properties["temperature"]["type"] == ["number", "null"]
    assert all(p.get("description") and "not documented" not in p["description"] for p in properties.values())


# -- a pipeline task of questions ---------------------------------------------------------------------

QUESTIONS_PIPELINE = """
name: questions
stages:
  analyze:
    backend: auto
    backends: {gemini: {retime_moments: false}}
    tasks:
      - questions: ["When do they ship?", "Who decides?", "Any risks?"]
  export:
    formats: [json, md]
"""


def test_a_pipeline_task_of_questions_shares_one_upload_and_one_cache(server, tmp_path):
    from runpipe.testing import tone_wav

    (tmp_path / "in").mkdir()
    audio = tone_wav(tmp_path / "in" / "talk.wav", 200.0)
    pipeline = tmp_path / "questions.yaml"
    pipeline.write_text(QUESTIONS_PIPELINE)
    answer = {"answer": "Friday.", "moments": [{"timestamp": "02:10", "quote": "ship Friday"}]}
    server.script(Answer(answer), Answer(answer), Answer(answer))
    out = cli(server, "run", str(pipeline), str(audio), "-o", str(tmp_path / "out"), "--no-progress")
    assert out.exit_code == 0, out.output
    assert [r.endpoint for r in server.requests if r.endpoint.startswith("upload.start")] == ["upload.start"]
    assert len(server.requests_to("caches.create")) == 1 and len(generate_requests(server)) == 3
    result = json.loads((tmp_path / "out" / "talk.json").read_text())
    assert [a["question"] for a in result["answers"]] == ["When do they ship?", "Who decides?", "Any risks?"]
    assert result["answers"][2]["moments"][0]["start"] == 130.0 and result["answers"][2]["cached_tokens"] > 6400
    assert result["provenance"]["cached_tokens"] == sum(a["cached_tokens"] for a in result["answers"])
    assert "Friday." in (tmp_path / "out" / "talk.md").read_text()


def test_a_pipeline_task_of_questions_offline_says_plainly_that_it_needs_gemini(tmp_path):
    from runpipe.testing import tone_wav

    (tmp_path / "in").mkdir()
    audio = tone_wav(tmp_path / "in" / "talk.wav", 5.0)
    pipeline = tmp_path / "questions.yaml"
    pipeline.write_text(QUESTIONS_PIPELINE)
    out = CliRunner().invoke(main, ["run", str(pipeline), str(audio), "-o", str(tmp_path / "out"), "--no-progress"],
                             env={"GEMINI_API_KEY": "", "GOOGLE_API_KEY": ""}, catch_exceptions=False)
    assert out.exit_code == 3, out.output
    (line,) = out.output.strip().splitlines()
    assert "task ask: Free-form answers need gemini; backend local writes only" in line and "GEMINI_API_KEY" in line
    assert not (tmp_path / "out").exists()


def test_answer_moments_move_onto_the_heard_speech_like_segments():
    from runpipe.plugins.gemini.ask import Moment, align_moments
    from runpipe.plugins.retime.align import TimedWord

    heard = [TimedWord(w, 2.0 + 0.3 * i, 2.25 + 0.3 * i) for i, w in enumerate("welcome back to the show".split())]
    heard += [TimedWord(w, 9.0 + 0.3 * i, 9.25 + 0.3 * i) for i, w in enumerate("thanks for having me".split())]
    moments = [Moment("00:50", "Thanks for having me.", 50.0), Moment("00:01", "Welcome back to the show.", 1.0),
               Moment("soon", "unreadable time", None)]
    placed = align_moments(moments, heard, [(2.0, 3.5), (9.0, 10.2)], duration=12.0)
    assert [(m.start, m.timing) for m in placed] == [(9.0, "aligned"), (2.0, "aligned"), (None, "model")]
    assert [m.timestamp for m in placed] == ["00:09", "00:02", "soon"]
    assert [m.original_timestamp for m in placed] == ["00:50", "00:01", None]  # what the model said is kept


@pytest.mark.local_models  # the moments are re-timed with the offline recogniser
def test_ask_moves_a_cited_moment_onto_the_real_speech(server, tmp_path):
    audio = sample_copy(tmp_path / "in")  # "Thanks for having me." starts at 7.12 s (samples/podcast_sample.json)
    server.script(Answer({"answer": "Speaker 2 thanks the host.", "moments": [{"timestamp": "00:30", "quote": "Thanks for having me."}]}))
    out = cli(server, "ask", str(audio), "Who thanks whom?", "--json")
    assert out.exit_code == 0, out.output
    (moment,) = json.loads(out.output[out.output.index("{"):])["answers"][0]["moments"]
    assert moment["original_timestamp"] == "00:30" and moment["timestamp"] == "00:07"
    assert moment["timing"] in ("aligned", "interpolated")
    assert abs(moment["start"] - 7.12) < 0.5, moment


def test_estimate_counts_a_task_of_questions_as_one_upload_and_one_request_a_question(server, tmp_path):
    from runpipe.testing import tone_wav

    (tmp_path / "in").mkdir()
    audio = tone_wav(tmp_path / "in" / "talk.wav", 200.0)
    pipeline = tmp_path / "questions.yaml"
    pipeline.write_text(QUESTIONS_PIPELINE)
    out = cli(server, "estimate", str(pipeline), str(audio), "-b", "gemini", "--json")
    assert out.exit_code == 0, out.output
    (row,) = json.loads(out.output)
    (task,) = row["tasks"]
    assert task["delivery"] == "Files API upload, one context cache" and task["requests"] == 1 + 1 + 3
    assert task["audio_tokens"] == 6400 and not server.requests
