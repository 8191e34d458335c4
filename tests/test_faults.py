"""Issue 5's fault and bad-input matrix, against the local Gemini REST server (FakeGemini) and,
where it applies, the offline ``local`` backend.

Every case runs a batch with at least one good input next to the bad one and checks, through
:func:`check_batch`: the failed input's message names the input and the cause, the other inputs
finish, no output (and no ``*.part*`` temporary) is left for the failed input, every input file
is byte-for-byte untouched, and a rerun completes what can be completed without repeating
finished work (proved by FakeGemini's request log).

=========================================================  ===================================================
Issue 5 case                                               Test
=========================================================  ===================================================
empty file                                                 test_bad_media_fails_alone[empty]; unit: test_normalize.py::test_empty_file
zero-duration audio                                        test_bad_media_fails_alone[zero-duration]
truncated/corrupt MP3                                      test_bad_media_fails_alone[truncated-mp3], [corrupt-flac];
                                                           unit: test_normalize.py::test_truncated_mp3
text or image file with an audio extension                 test_bad_media_fails_alone[text-as-mp3], [image-as-wav];
                                                           unit: test_normalize.py::test_text_named_mp3, ::test_image_with_audio_extension
unsupported codec                                          test_bad_media_fails_alone[unknown-codec] (a WAV whose format tag 0x1234
                                                           no decoder knows: a real audio stream ffmpeg demuxes but cannot decode),
                                                           [subtitles-only] (a Matroska file with only a subtitle stream)
huge file past the Files API 2 GB limit                    test_file_over_2_gb_is_refused_before_any_request (sparse 2.1 GB file,
                                                           real limit), test_too_big_for_the_files_api_fails_alone (limit lowered,
                                                           whole engine, server log shows the one good upload only)
audio over 9.5 h -- chunked                                test_audio_over_9_5_hours_is_chunked (10 h AudioFile, stubbed silences
                                                           and slicing, the real Gemini backend over HTTP: 40 requests)
pure silence -- empty transcript                           test_silence_gives_an_empty_transcript_gemini, ..._local
filename with spaces, unicode, quotes, shell metachars     test_hostile_file_name[gemini], [local] (upload path: non-ASCII name);
                                                           scripted backend: test_engine.py::test_hostile_file_name_stays_inside
output template trying ../ escape                          test_template_escape_is_refused_before_any_request;
                                                           test_engine.py::test_template_escape_is_refused
unwritable output folder                                   test_unwritable_output_folder_is_found_before_any_request;
                                                           test_engine.py::test_unwritable_output_folder
pipeline whose schema file is missing                      test_missing_schema_file_is_a_config_error (engine and CLI exit 2)
plugin that raises in each stage                           test_plugin_raising_in_each_stage[ingest|normalize|analyze|postprocess|export]
                                                           (with rerun); test_engine.py::test_plugin_raising_in_any_stage_fails_only_that_input
backend 429 storms, 500s, timeouts, truncated JSON,        test_backend_faults_fail_one_input_and_rerun_completes[429-storm|500s|
schema-invalid JSON                                        timeouts|dropped-connections|truncated-json|cut-at-max-tokens|schema-invalid];
                                                           retries/repairs in detail: test_gemini_backend.py
answer too long (max_tokens / repetition loop, issue 9)    test_too_long_answer_splits_the_window_at_a_silence,
                                                           test_splitting_stops_at_the_floor_and_fails_clearly
process killed mid-upload and mid-analysis, then rerun     test_resume.py (real CLI in a subprocess, kill -9)
=========================================================  ===================================================

Issue 14 (round two):

=========================================================  ===================================================
Issue 14 case                                              Test
=========================================================  ===================================================
1. output names colliding (a.mp3/a.wav/sub/a.mp3, long     test_colliding_output_names_are_made_unique
   names cut alike, new\\nline vs new_line, index)
2. Ctrl-C waits for requests in flight; a second one       test_ctrl_c_with_requests_in_flight_stops_at_once[1|2] (real CLI, SIGINT
   prints a threading traceback; Ctrl-C while               to its process group, answers held 60 s: exit 130 at once, inputs
   transcoding records invented failures                    interrupted, rerun done); test_ctrl_c_during_transcoding_records_no_invented_failure
3. outputs written 0600; a rerun resets a user's chmod     test_outputs_have_normal_permissions_and_keep_a_users_chmod
4. run store: full disk at PRAGMA journal_mode=WAL,        test_run_store_on_a_full_disk_is_one_line_exit_3[status|cache info]
   damaged runs.sqlite, RUNPIPE_USER_PATH at a file        (real EFBIG: RLIMIT_FSIZE 0), test_damaged_run_store_is_set_aside_and_rebuilt,
                                                           test_user_path_pointing_at_a_file
5. YAML alias bomb; huge values quoted in errors           test_alias_bomb_is_refused, test_errors_quote_values_short
7. validate passes templates the run refuses               test_validate_refuses_templates_the_run_refuses[...];
   (../, absolute, {unknown}, {stem, {stem.__class__})    test_template_escape_is_refused_before_any_request
6. export: JSON array, string start, null speaker or      test_export_checks_results_against_their_format[array|string-start|
   content, no segments (checked against                   null-speaker|null-content|no-segments|unknown-segment-key]
   schemas/result.schema.json)
7. export HTML when the normalized audio is gone           test_export_html_says_when_the_normalized_audio_is_gone
7. estimate exits 0 when inputs cannot be read            test_estimate_exits_1_when_an_input_cannot_be_read (with and without --json)
7. a rerun on one input rewrites index.html with it alone  test_a_rerun_on_one_input_keeps_the_others_on_the_batch_page
7. a disk-full error keeps 4 of a failed input's outputs   test_a_failed_write_leaves_none_of_the_inputs_outputs
7. an interrupted run does not count unstarted inputs      test_ctrl_c_with_requests_in_flight_stops_at_once (unfinished == 3)
7. two runs on the same inputs both pay                   test_two_runs_on_the_same_input_pay_once (per-input lock, real CLI x2)
7. status nosuchrun; -n -5                                 test_status_of_an_unknown_run_and_a_negative_limit
7. podcast with no inputs leaves a phantom run             test_no_inputs_leaves_no_phantom_run
7. -v only before the command                              test_verbose_flag_before_or_after_the_command
=========================================================  ===================================================
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import struct
import subprocess
import sys
import wave
from pathlib import Path

import ffmpeg as ffmpeg_python
import pytest

from conftest import sample_copy, wait_for
from runpipe import ffmpeg, hookimpl
from runpipe.errors import MediaError, PipelineConfigError
from runpipe.model import AudioFile, MediaItem, TimeRange
from runpipe.paths import user_dir
from runpipe.plugins.gemini import GeminiBackend
from runpipe.testing import make_engine, tone_wav
from runpipe.testing.gemini_server import (
    Answer,
    Disconnect,
    FakeGemini,
    HttpError,
    RawText,
    repetition_loop,
    truncated,
)

SEGMENT = {"speaker": "Speaker 1", "timestamp": "00:00", "content": "Hello there.", "language": "English",
           "language_code": "en", "translation": "", "emotion": "neutral"}
GOOD = {"summary": "A short recording.", "segments": [SEGMENT]}
EMPTY = {"summary": "", "segments": []}
#: Fast retries and polling; one input at a time so scripted answers go to a known input.
FAST = {"retry_base_delay": 0.01, "retry_max_delay": 5.0, "file_poll_interval": 0.01, "max_retries": 2}


# -- fixtures and helpers ------------------------------------------------------------------------


@pytest.fixture
def server(monkeypatch):
    for name in ("GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL", "GOOGLE_GENAI_API_VERSION", "GOOGLE_GENAI_USE_VERTEXAI"):
        monkeypatch.delenv(name, raising=False)
    with FakeGemini() as fake:
        monkeypatch.setenv("GEMINI_API_KEY", fake.api_key)
        yield fake


def pipeline(server: FakeGemini | None = None, *, backend: str = "gemini", template: str = "{stem}",
             formats=("json", "srt"), chunking: dict | None = None, **options) -> dict:
    analyze: dict = {"backend": backend, "tasks": [{"prompt": "transcript"}]}
    if server is not None:
        analyze["backends"] = {"gemini": {"base_url": server.base_url, **FAST, **options}}
    if chunking:
        analyze["chunking"] = chunking
    return {"name": "faults", "concurrency": 1,
            "stages": {"analyze": analyze, "export": {"formats": list(formats), "template": template}}}


def digest(paths) -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "<missing>" for p in paths}


def part_files(*folders: Path) -> list[Path]:
    return [p for folder in folders if folder.exists() for p in folder.rglob("*") if ".part" in p.name]


def check_batch(engine, spec: dict, inputs: list[Path], out: Path, *, bad: dict[str, str], stage: str | None = None):
    """Run ``spec`` on ``inputs``; ``bad`` maps input file names to a regex of the expected cause.

    Checks everything issue 5 asks of a failure and returns the results by input file name.
    """
    before = digest(inputs)
    result = engine.run(engine.load_dict(spec), [str(p) for p in inputs], output_dir=out)
    by_name = {Path(r.item.uri).name: r for r in result.inputs}
    assert set(by_name) == {p.name for p in inputs}
    for name, cause in bad.items():
        failed = by_name[name]
        assert failed.status == "failed", f"{name} should have failed"
        assert failed.error.startswith(f"{failed.item.name}: ") and name in failed.error, failed.error  # names the input
        assert re.search(cause, failed.error), failed.error  # and the cause
        if stage:
            assert failed.failed_stage == stage, failed.error
        assert not failed.artifacts
        assert not [p for p in out.glob("*") if p.name.startswith(Path(name).stem + ".")], "output left for a failed input"
    for name, item in by_name.items():
        if name not in bad:
            assert item.status == "done", item.error
            assert item.artifacts and all(a.path.is_file() and a.path.parent == out.resolve() for a in item.artifacts)
    assert not part_files(out, user_dir()), "temporary files left behind"
    assert digest(inputs) == before, "an input was modified"
    return by_name


def zero_frames_wav(path: Path) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(b"")
    return path


def unknown_codec_wav(path: Path, seconds: float = 1.0) -> Path:
    """A WAV file whose audio is in format 0x1234, which no decoder knows."""
    data = b"\x00\x01" * int(16000 * seconds)
    fmt = struct.pack("<HHIIHH", 0x1234, 1, 16000, 32000, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def silence_wav(path: Path, seconds: float) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(b"\0\0" * int(16000 * seconds))
    return path


def _make_bad(kind: str, folder: Path, media_dir: Path) -> Path:
    if kind == "empty":
        path = folder / "empty.mp3"
        path.write_bytes(b"")
    elif kind == "zero-duration":
        path = zero_frames_wav(folder / "zero.wav")
    elif kind == "truncated-mp3":
        data = (media_dir / "tone.mp3").read_bytes()
        path = folder / "cut.mp3"
        path.write_bytes(data[: len(data) * 4 // 10])
    elif kind == "corrupt-flac":
        path = folder / "garbage.flac"
        path.write_bytes(b"fLaC" + bytes(range(256)) * 16)
    elif kind == "text-as-mp3":
        path = folder / "notes.mp3"
        path.write_text("just some text, not audio\n" * 20)
    elif kind == "image-as-wav":
        png = folder / "picture.png"
        ffmpeg.run(ffmpeg_python.input("color=c=red:s=16x16", f="lavfi").output(str(png), **{"frames:v": 1}))
        path = png.rename(folder / "picture.wav")
    elif kind == "unknown-codec":
        path = unknown_codec_wav(folder / "strange codec.wav")
    elif kind == "subtitles-only":
        srt = folder / "subs.srt"
        srt.write_text("1\n00:00:00,000 --> 00:00:02,000\nhello\n\n")
        path = folder / "subtitles.mka"
        ffmpeg.run(ffmpeg_python.input(str(srt)).output(str(path), **{"c:s": "srt"}))
        srt.unlink()
    else:  # pragma: no cover
        raise AssertionError(kind)
    return path


BAD_MEDIA = {
    "empty": r"file is empty \(0 bytes\)",
    "zero-duration": r"zero duration|no decodable audio",
    "truncated-mp3": r"truncated or corrupt: the header says 3\.0 s but only 1\.\d s decode",
    "corrupt-flac": r"not readable as audio|cannot decode",
    "text-as-mp3": r"not readable as audio or video",
    "image-as-wav": r"contains no audio stream",
    "unknown-codec": r"cannot decode the audio \(no decoder for its codec\)",  # whichever ffmpeg build runs
    "subtitles-only": r"contains no audio stream",
}


# -- bad media -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(BAD_MEDIA))
def test_bad_media_fails_alone(kind, server, media_dir, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    bad = _make_bad(kind, folder, media_dir)
    good = tone_wav(folder / "good.wav", 2)
    out = tmp_path / "out"
    server.script(Answer(GOOD))
    with make_engine() as engine:
        check_batch(engine, pipeline(server), [bad, good], out, bad={bad.name: BAD_MEDIA[kind]}, stage="normalize")
        assert len(server.requests_to("generateContent")) == 1  # only the good input reached Gemini
        assert not list((user_dir() / "normalized").glob(f"*{hashlib.sha256(bad.read_bytes()).hexdigest()}*"))
        # a rerun fails the bad input the same way, and repeats nothing for the good one
        again = check_batch(engine, pipeline(server), [bad, good], out, bad={bad.name: BAD_MEDIA[kind]}, stage="normalize")
    assert [r.endpoint for r in server.requests] == ["models.list", "generateContent", "transcribe"]  # the free model check, then the good input's answer and timeline, once
    assert again[good.name].status == "done"


@pytest.mark.local_models
def test_bad_media_with_the_local_backend(media_dir, tmp_path):
    """Normalization is shared by every backend; one bad input next to a good one, offline."""
    from runpipe.plugins.local.backend import LocalBackend

    if LocalBackend.unavailable_reason():
        pytest.skip(LocalBackend.unavailable_reason())
    folder = tmp_path / "in"
    folder.mkdir()
    bad = _make_bad("truncated-mp3", folder, media_dir)
    good = silence_wav(folder / "quiet.wav", 3)
    with make_engine() as engine:
        check_batch(engine, pipeline(backend="local"), [bad, good], tmp_path / "out", bad={bad.name: BAD_MEDIA["truncated-mp3"]})


# -- the Files API's 2 GB limit ------------------------------------------------------------------


def test_file_over_2_gb_is_refused_before_any_request(server, tmp_path):
    """The real limit, on a sparse 2.1 GB file (no disk space used): refused with the reason
    before a single request reaches the server."""
    from runpipe.model import Task
    from runpipe.paths import builtin_schemas_dir

    huge = tmp_path / "huge.wav"
    with huge.open("wb") as handle:
        handle.truncate(2_100_000_000)
    audio = AudioFile(source=MediaItem(str(huge), "file", "huge.wav"), path=huge, mime_type="audio/wav",
                      duration=3600.0, content_hash="huge")
    schema = json.loads((builtin_schemas_dir() / "transcript.schema.json").read_text())
    backend = GeminiBackend({"base_url": server.base_url, **FAST})
    try:
        with pytest.raises(MediaError, match=r"audio to upload is 2\.1 GB \(2100000000 bytes\); the Gemini Files API takes at most 2 GB") as caught:
            backend.analyze(audio, Task("transcript", "Transcribe.", "transcript", schema))
    finally:
        backend.close()
    assert "Files API" in str(caught.value)
    assert server.requests == []  # no upload was started, nothing was asked


def test_too_big_for_the_files_api_fails_alone(server, tmp_path, monkeypatch):
    """The whole engine, with the limit lowered so a 39 s recording is "too big": the big input
    fails naming the limit, the small one is uploaded and finishes, and the server saw exactly
    one upload (the small one's)."""
    from runpipe.plugins.gemini import uploads

    monkeypatch.setattr(uploads, "MAX_UPLOAD_BYTES", 50_000)
    folder = tmp_path / "in"
    big = sample_copy(folder, "big talk.ogg")
    small = tone_wav(folder / "small.wav", 1)
    server.script(Answer(GOOD))
    with make_engine() as engine:
        results = check_batch(engine, pipeline(server, inline_limit_bytes=0), [big, small], tmp_path / "out",
                              bad={big.name: r"audio to upload is 0\.\d+ GB \(\d+ bytes\); the Gemini Files API takes at most 5e-05 GB"},
                              stage="analyze")
    (start,) = server.requests_to("upload.start")
    assert int(start.headers["x-goog-upload-header-content-length"]) < 50_000
    assert len(server.requests_to("generateContent")) == 1
    assert results[small.name].documents[0].provenance["media"] == "file"


# -- long audio ----------------------------------------------------------------------------------


def test_audio_over_9_5_hours_is_chunked(server, tmp_path, monkeypatch):
    """A 10-hour input (an AudioFile saying so; silences and slicing stubbed, so nothing 10 hours
    long is encoded) goes through the real analyze stage and the real Gemini backend over HTTP:
    windows of at most the backend's preferred length cut in pauses, answers on one timeline."""
    from runpipe import chunking
    from runpipe.plugins import analyze as analyze_plugin
    from runpipe.run import RunContext
    from runpipe.tasks import resolve_tasks

    ten_hours = 10 * 3600.0
    assert ten_hours > GeminiBackend.limits.max_audio_seconds
    pauses = [(t - 1.0, t + 1.0) for t in range(700, int(ten_hours), 700)]  # a pause every 700 s
    monkeypatch.setattr(chunking, "find_silences", lambda audio, *a, **k: pauses)
    clip = tone_wav(tmp_path / "clip.wav", 1)
    sliced: list[TimeRange] = []

    def fake_slice(audio, window):
        sliced.append(window)
        return dataclasses.replace(audio, path=clip, duration=window.end - window.start,
                                   content_hash=f"{audio.content_hash}@{window.start}", mime_type="audio/wav")

    monkeypatch.setattr(analyze_plugin, "slice_audio", fake_slice)
    server.default_response = Answer({"summary": "Part.", "segments": [{**SEGMENT, "timestamp": "00:05"}]})
    long_audio = AudioFile(source=MediaItem(str(clip), "file", "ten hours.wav"), path=clip, mime_type="audio/wav",
                           duration=ten_hours, content_hash="ten-hours")
    with make_engine() as engine:
        spec = engine.load_dict(pipeline(server))
        tasks = resolve_tasks(spec, engine.registries.prompts)
        run = RunContext(engine, spec, tasks, tmp_path / "out", engine.store, engine.store.start_run("faults"))
        analysis = analyze_plugin.runpipe_analyze(audio=long_audio, task=tasks[0], run=run)

    limit = GeminiBackend.limits.preferred_chunk_seconds
    sliced.sort(key=lambda w: w.start)  # windows are asked for side by side, in any order
    assert len(sliced) == len(server.requests_to("generateContent")) >= ten_hours / limit
    assert all(w.end - w.start <= limit + 2 * 1.0 + 1e-6 for w in sliced)
    assert sliced[0].start == 0 and sliced[-1].end == ten_hours
    cuts = [(a.end + b.start) / 2 for a, b in zip(sliced, sliced[1:])]
    assert all(any(c == pytest.approx((a + b) / 2) for a, b in pauses) for c in cuts)  # every cut in a pause
    starts = [s["start"] for s in analysis.data["segments"]]
    assert starts == pytest.approx([w.start + 5 for w in sliced])  # one per window, on the original timeline


def test_over_9_5_hours_is_chunked_even_without_a_preferred_chunk_length(tmp_path, monkeypatch):
    from runpipe import chunking
    from runpipe.interfaces import BackendLimits

    monkeypatch.setattr(chunking, "find_silences", lambda audio, *a, **k: [(30000.0, 30002.0)])
    limits = BackendLimits(max_audio_seconds=GeminiBackend.limits.max_audio_seconds)
    audio = AudioFile(MediaItem("x", "file", "x"), tmp_path / "x.ogg", "audio/ogg", 10 * 3600.0, "h")
    windows = chunking.plan_windows(audio, TimeRange(0, audio.duration), limits.preferred_chunk_seconds or limits.max_audio_seconds, 1.0)
    assert [(w.start, w.end) for w in windows] == [(0, 30002.0), (30000.0, 36000.0)]


# -- silence -------------------------------------------------------------------------------------


def test_silence_gives_an_empty_transcript_gemini(server, tmp_path):
    (tmp_path / "in").mkdir()
    quiet = silence_wav(tmp_path / "in" / "quiet.wav", 5)
    server.script(Answer(EMPTY))
    with make_engine() as engine:
        results = check_batch(engine, pipeline(server), [quiet], tmp_path / "out", bad={})
    document = results["quiet.wav"].documents[0]
    assert document.segments == () and not results["quiet.wav"].error
    data = json.loads((tmp_path / "out" / "quiet.json").read_text())
    assert data["segments"] == [] and data["summary"] == ""
    assert (tmp_path / "out" / "quiet.srt").read_text().strip() == ""


@pytest.mark.local_models
def test_silence_gives_an_empty_transcript_local(tmp_path):
    from runpipe.plugins.local.backend import LocalBackend

    if LocalBackend.unavailable_reason():
        pytest.skip(LocalBackend.unavailable_reason())
    folder = tmp_path / "in"
    folder.mkdir()
    quiet = silence_wav(folder / "quiet.wav", 8)
    with make_engine() as engine:
        results = check_batch(engine, pipeline(backend="local"), [quiet], tmp_path / "out", bad={})
    assert results["quiet.wav"].documents[0].segments == ()
    assert json.loads((tmp_path / "out" / "quiet.json").read_text())["segments"] == []


# -- names, templates, output folders, pipelines ------------------------------------------------

HOSTILE = "we'ird \"quoted\" $(touch pwned) `touch pwned2` ü ñ 日本 ; | & * name.wav"


@pytest.mark.parametrize("backend", ["gemini", pytest.param("local", marks=pytest.mark.local_models)])
def test_hostile_file_name(backend, server, tmp_path, monkeypatch):
    if backend == "local":
        from runpipe.plugins.local.backend import LocalBackend

        if LocalBackend.unavailable_reason():
            pytest.skip(LocalBackend.unavailable_reason())
    folder = tmp_path / "in"
    folder.mkdir()
    monkeypatch.chdir(folder)
    hostile = tone_wav(folder / HOSTILE, 2)
    server.script(Answer(GOOD))
    spec = pipeline(server, backend=backend, inline_limit_bytes=0)  # gemini: through the Files API upload
    with make_engine() as engine:
        results = check_batch(engine, spec, [hostile], tmp_path / "out", bad={})
    (artifact, *_) = results[HOSTILE].artifacts
    assert artifact.path.name == HOSTILE.replace("|", "_").replace("*", "_").replace('"', "_").removesuffix(".wav") + ".json"
    assert not list(tmp_path.rglob("pwned*"))  # nothing was ever run through a shell
    if backend == "gemini":
        assert len(server.requests_to("upload.start")) == 1 and server.file_names == []  # uploaded, then deleted


def test_template_escape_is_refused_before_any_request(server, tmp_path):
    """Refused when the pipeline loads (so `runpipe validate` says so too); a pipeline built
    without the loader (embedding) is still refused by the run, input by input, before any request."""
    from runpipe.pipeline.spec import Pipeline

    folder = tmp_path / "in"
    folder.mkdir()
    inputs = [tone_wav(folder / "a.wav", 1), tone_wav(folder / "b.wav", 1)]
    out = tmp_path / "deep" / "out"
    with make_engine() as engine:
        with pytest.raises(PipelineConfigError, match=r"stages\.export\.template: '\.\./\.\./\{stem\}': '\.\.' would put outputs outside"):
            engine.load_dict(pipeline(server, template="../../{stem}"))
        result = engine.run(Pipeline.from_dict(pipeline(server, template="../../{stem}")), [str(p) for p in inputs], output_dir=out)
    assert [(r.status, r.failed_stage) for r in result.inputs] == [("failed", "export")] * 2
    assert all("would put outputs outside the output folder" in r.error for r in result.inputs)
    assert not list(tmp_path.rglob("*.json")) and not list(tmp_path.rglob("*.srt"))
    assert [r.endpoint for r in server.requests] == ["models.list"]  # found before anything was paid for (the model check is free)


def test_unwritable_output_folder_is_found_before_any_request(server, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    inputs = [tone_wav(folder / "a.wav", 1)]
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with make_engine() as engine:
        results = check_batch(engine, pipeline(server), inputs, blocker / "out", bad={"a.wav": r"cannot write|Not a directory"})
    assert results["a.wav"].failed_stage == "export"
    assert [r.endpoint for r in server.requests] == ["models.list"] and blocker.read_text() == "not a folder"  # only the free model check
    # once the folder can be written, the rerun completes
    server.script(Answer(GOOD))
    with make_engine() as engine:
        check_batch(engine, pipeline(server), inputs, tmp_path / "out", bad={})


def test_missing_schema_file_is_a_config_error(tmp_path):
    spec = {"name": "x", "stages": {"analyze": {"backend": "gemini", "tasks": [{"prompt": "transcript", "schema": "schemas/gone.json"}]}}}
    with make_engine() as engine:
        with pytest.raises(PipelineConfigError, match=r"stages\.analyze\.tasks\[0\]\.schema: schema file .*gone\.json does not exist"):
            engine.load_dict(spec, base_dir=tmp_path)
    file = tmp_path / "p.yaml"
    file.write_text("name: x\nstages:\n  analyze:\n    backend: gemini\n    tasks:\n      - prompt: transcript\n        schema: schemas/gone.json\n")
    audio = tone_wav(tmp_path / "a.wav", 1)
    before = digest([audio])
    out = subprocess.run([sys.executable, "-m", "runpipe", str(file), str(audio), "-o", str(tmp_path / "out")],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120,
                         env={**os.environ, "GEMINI_API_KEY": "unused", "RUNPIPE_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert out.returncode == 2, out.stderr
    assert "gone.json does not exist" in out.stderr and str(file) in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "out").exists() and digest([audio]) == before


# -- plugins that raise --------------------------------------------------------------------------


class Boom(Exception):
    pass


class RaisingPlugin:
    """Raises in one stage, for inputs whose name contains 'bad'."""

    def __init__(self, stage):
        self.stage = stage

    def _maybe(self, stage, name):
        if stage == self.stage and "bad" in name:
            raise Boom(f"{stage} exploded")

    @hookimpl(tryfirst=True)
    def runpipe_ingest(self, location):
        self._maybe("ingest", location)

    @hookimpl(tryfirst=True)
    def runpipe_normalize(self, item):
        self._maybe("normalize", item.name)

    @hookimpl(tryfirst=True)
    def runpipe_analyze(self, audio):
        self._maybe("analyze", audio.source.name)

    @hookimpl(tryfirst=True)
    def runpipe_postprocess(self, audio):
        self._maybe("postprocess", audio.source.name)

    @hookimpl(tryfirst=True)
    def runpipe_export(self, document):
        self._maybe("export", document.source.name)


@pytest.mark.parametrize("stage", ["ingest", "normalize", "analyze", "postprocess", "export"])
def test_plugin_raising_in_each_stage(stage, server, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    bad, good = tone_wav(folder / "bad.wav", 1), tone_wav(folder / "good.wav", 2)
    paid = stage in ("postprocess", "export")  # the bad input's analysis ran before the plugin raised
    server.script(*[Answer(GOOD)] * (2 if paid else 1))
    with make_engine([RaisingPlugin(stage)]) as engine:
        results = check_batch(engine, pipeline(server), [bad, good], tmp_path / "out",
                              bad={"bad.wav": rf"{stage} failed \(plugin RaisingPlugin-0\): Boom: {stage} exploded"}, stage=stage)
    assert results["bad.wav"].failed_plugin == "RaisingPlugin-0"
    asked = len(server.requests_to("generateContent"))
    # rerun without the broken plugin: the bad input completes, finished analyses are not repeated
    server.script(*[Answer(GOOD)] * (0 if paid else 1))
    with make_engine() as engine:
        check_batch(engine, pipeline(server), [bad, good], tmp_path / "out", bad={})
    assert len(server.requests_to("generateContent")) == asked + (0 if paid else 1)


# -- the backend misbehaving ---------------------------------------------------------------------

BACKEND_FAULTS = {
    "429-storm": ([HttpError(429, retry_after=0.05)] * 3, {}, r"kept answering 429 RESOURCE_EXHAUSTED after 3 attempt"),
    "500s": ([HttpError(500), HttpError(503), HttpError(500)], {}, r"failed after 3 attempt\(s\) \(500 INTERNAL\)"),
    # The timeout also applies to the good input's request, which on a busy 2-core machine (load 16)
    # took longer than 0.5 s to answer: 2 s against a 4 s delay keeps the two cases apart.
    "timeouts": ([Answer(GOOD, delay=4.0)] * 3, {"request_timeout": 2.0}, r"could not reach Gemini .* after 3 attempt"),
    "dropped-connections": ([Disconnect()] * 3, {}, r"could not reach Gemini .* after 3 attempt"),
    "truncated-json": ([RawText('{"summary": "A short rec')] * 3, {}, r"not valid JSON"),
    "cut-at-max-tokens": ([truncated(GOOD)] * 3, {}, r"cut off at the output token limit"),
    "schema-invalid": ([Answer({"summary": 3, "segments": [{"speaker": "x"}]})] * 3, {}, r"does not match the schema"),
}


@pytest.mark.parametrize("fault", list(BACKEND_FAULTS))
def test_backend_faults_fail_one_input_and_rerun_completes(fault, server, tmp_path):
    answers, options, cause = BACKEND_FAULTS[fault]
    folder = tmp_path / "in"
    folder.mkdir()
    bad, good = tone_wav(folder / "first.wav", 2), tone_wav(folder / "second.wav", 2, freq=330)
    server.script(*answers, Answer(GOOD))  # one input at a time: the faults go to the first
    spec = pipeline(server, **options)
    with make_engine() as engine:
        check_batch(engine, spec, [bad, good], tmp_path / "out", bad={"first.wav": cause}, stage="analyze")
    assert len(server.requests_to("generateContent")) == len(answers) + 1
    server.script(Answer(GOOD))
    with make_engine() as engine:
        check_batch(engine, spec, [bad, good], tmp_path / "out", bad={})
    assert len(server.requests_to("generateContent")) == len(answers) + 2  # only the failed input was asked again
    assert server.pending() == 0


# -- answers too long for one request (issue 9) --------------------------------------------------


@pytest.mark.local_models  # the retime step re-times the answer with Whisper
def test_too_long_answer_splits_the_window_at_a_silence(server, tmp_path, monkeypatch):
    from runpipe.plugins import analyze as analyze_plugin

    monkeypatch.setattr(analyze_plugin, "MIN_SPLIT_SECONDS", 10.0)
    audio = sample_copy(tmp_path / "in")
    first_half = {"summary": "One.", "segments": [{**SEGMENT, "timestamp": "00:02", "content": "first"}]}
    second_half = {"summary": "Two.", "segments": [{**SEGMENT, "timestamp": "00:03", "content": "second"}]}
    loop = repetition_loop('{"summary": "", "segments": [{"content": "', "and so on ", 300)
    server.script(truncated(GOOD), loop, Answer(first_half), Answer(second_half))
    spec = pipeline(server, repair_attempts=1)
    with make_engine() as engine:
        results = check_batch(engine, spec, [audio], tmp_path / "out", bad={})
    whole, repair, *halves = server.requests_to("generateContent")
    assert len(halves) == 2 and "fileData" not in json.dumps(whole.body)
    document = results[audio.name].documents[0]
    windows = document.windows
    assert len(windows) == 2 and 12 < windows[0].end < 28 and windows[1].end == pytest.approx(document.audio.duration, abs=0.01)
    assert [s.content for s in document.segments] == ["first", "second"]
    assert document.segments[1].start == pytest.approx(windows[1].start + 3, abs=0.01)  # on the input's timeline
    assert document.summary == "One.\n\nTwo."
    # a rerun goes straight to the stored halves: nothing is asked again
    with make_engine() as engine:
        check_batch(engine, spec, [audio], tmp_path / "out", bad={})
    assert len(server.requests_to("generateContent")) == 4


def test_splitting_stops_at_the_floor_and_fails_clearly(server, tmp_path, monkeypatch):
    from runpipe.plugins import analyze as analyze_plugin

    monkeypatch.setattr(analyze_plugin, "MIN_SPLIT_SECONDS", 15.0)
    folder = tmp_path / "in"
    audio = sample_copy(folder)
    good = tone_wav(folder / "good.wav", 1)
    # 39 s is cut at the answer limit -> split into ~20 s halves; the first half is cut too, and
    # halving it again would go below the floor: the input fails. Then good.wav is answered.
    server.script(truncated(GOOD), truncated(GOOD), Answer(GOOD))
    with make_engine() as engine:
        check_batch(engine, pipeline(server, repair_attempts=0), [audio, good], tmp_path / "out",
                    bad={audio.name: r"window 00:00-00:\d\d \(\d\d s\) is still too long for one request \(max_tokens\), "
                                     r"and windows are not split below 15 s; last error: .*cut off at the output token limit"},
                    stage="analyze")
    assert len(server.requests_to("generateContent")) == 3


# -- issue 14: what a demanding user broke -------------------------------------------------------

SCRIPTED = {"name": "faults", "stages": {"analyze": {"backend": "scripted", "tasks": [{"prompt": "transcript"}]},
                                          "export": {"formats": ["json", "srt"]}}}


def scripted_engine(*answers):
    from runpipe.testing import ScriptedBackendPlugin

    return make_engine([ScriptedBackendPlugin(*answers)])


def test_colliding_output_names_are_made_unique(tmp_path):
    """Inputs whose outputs would share a file (same stem, a control character that becomes
    ``_``, long names cut to the same length, the batch page's own name) each keep their own
    outputs; the names are the same on a rerun, and the run says which inputs were renamed."""
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    long_a, long_b = "x" * 246 + "1.wav", "x" * 246 + "2.wav"
    names = ["a.mp3", "a.wav", "sub/a.mp3", "new\nline.wav", "new_line.wav", long_a, long_b, "index.wav", "solo.wav"]
    inputs = [tone_wav(folder / name, 1, freq=200 + 50 * n) for n, name in enumerate(names)]
    spec = {**SCRIPTED, "stages": {**SCRIPTED["stages"], "export": {"formats": ["json", "html"]}}}
    out = tmp_path / "out"
    messages = []
    with scripted_engine() as engine:
        engine.subscribe(lambda e: messages.append(e) if e.kind == "message" else None)
        result = engine.run(engine.load_dict(spec), [str(p) for p in inputs], output_dir=out)
        first = {r.item.uri: sorted(a.path.name for a in r.artifacts) for r in result.inputs}
        assert all(r.status == "done" for r in result.inputs), [r.error for r in result.inputs]
        again = engine.run(engine.load_dict(spec), [str(p) for p in inputs], output_dir=out)
    assert {r.item.uri: sorted(a.path.name for a in r.artifacts) for r in again.inputs} == first  # deterministic
    jsons = sorted(out.glob("*.json"))
    assert len(jsons) == len(inputs)  # one result each, none overwritten
    assert sorted(json.loads(p.read_text())["input"]["uri"] for p in jsons) == sorted(str(p.resolve()) for p in inputs)
    written = {p.name for p in out.iterdir()}
    assert {"a.wav.json", "solo.json", "index.html"} <= written  # a suffix tells a.wav apart; solo keeps its name
    assert "index.json" not in written and not [n for n in written if len(n.encode()) > 255]
    assert (out / "index.html").read_text().count('class="input-row"') == len(inputs)
    assert len([n for n in written if n.endswith(".html")]) == len(inputs) + 1
    renamed = [e.item.uri for e in messages if "written as" in (e.detail or "")]
    assert sorted(renamed) == sorted([str(p.resolve()) for p in inputs[:5] + inputs[7:8]] * 2)  # both runs say so
    assert not [e for e in messages if e.item and e.item.name in (long_a, long_b, "solo.wav")]


def test_outputs_have_normal_permissions_and_keep_a_users_chmod(tmp_path):
    """Atomic writes give what a plain write would (0666 less the umask), and a rerun keeps the
    mode a user set; the same for `runpipe export` and the batch page."""
    audio = tone_wav(tmp_path / "a.wav", 1)
    out = tmp_path / "out"
    spec = {**SCRIPTED, "stages": {**SCRIPTED["stages"], "export": {"formats": ["json", "srt", "html"]}}}
    old = os.umask(0o002)
    try:
        with scripted_engine() as engine:
            engine.run(engine.load_dict(spec), [str(audio)], output_dir=out)
            modes = {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()}
            assert modes == {"a.json": 0o664, "a.srt": 0o664, "a.html": 0o664, "index.html": 0o664}
            (out / "a.srt").chmod(0o600)
            (out / "index.html").chmod(0o640)
            os.umask(0o077)
            engine.run(engine.load_dict(spec), [str(audio)], output_dir=out)
        assert {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()} == {**modes, "a.srt": 0o600, "index.html": 0o640}
        os.umask(0o022)
        cli = subprocess.run([sys.executable, "-m", "runpipe", "export", str(out / "a.json"), "-f", "vtt,md", "-o", str(tmp_path / "re")],
                             capture_output=True, text=True, timeout=120)
        assert cli.returncode == 0, cli.stderr
        assert {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "re").iterdir()} == {"a.vtt": 0o644, "a.md": 0o644}
    finally:
        os.umask(old)


def runpipe_cli(*args, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runpipe", *map(str, args)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "RUNPIPE_DISABLE_PLUGIN_AUTOLOAD": "1", **(env or {})}, **kwargs)


def test_alias_bomb_is_refused(tmp_path):
    """Nine levels of nine aliases inside an allowed field (9**7 = 4.8 million strings once
    expanded): refused from the YAML's shape, before the schema check quotes the value."""
    levels = ['a: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    levels += [f"a{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]" for n in range(1, 7)]
    body = "\n".join(f"  {line}" for line in levels)
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(f"name: bomb\nx-anchors:\n{body}\nstages:\n  analyze:\n    tasks: [{{prompt: *l6}}]\n")
    out = runpipe_cli("validate", bomb)
    assert out.returncode == 2, out.stderr
    assert "aliases here expand to more than 1,000,000" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr) < 500
    recursive = tmp_path / "loop.yaml"
    recursive.write_text("name: loop\nstages:\n  analyze:\n    tasks: &t [{prompt: *t}]\n")
    out = runpipe_cli("validate", recursive)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    # an ordinary use of anchors still loads
    shared = tmp_path / "shared.yaml"
    shared.write_text("name: shared\nstages:\n  analyze:\n    tasks:\n      - {prompt: transcript, schema: &s transcript}\n"
                      "      - {name: again, prompt: transcript, schema: *s}\n")
    assert load_pipeline_file(shared).name == "shared"


def load_pipeline_file(path: Path):
    with make_engine() as engine:
        return engine.load(path)


def test_errors_quote_values_short(tmp_path):
    """A long value in the wrong place is quoted by its beginning and its length, not whole."""
    big = tmp_path / "big.yaml"
    big.write_text("name: big\nstages:\n  analyze:\n    tasks: [{prompt: [" + ", ".join(["word"] * 50_000) + "]}]\n")
    with pytest.raises(PipelineConfigError) as caught:
        load_pipeline_file(big)
    message = str(caught.value)
    assert "stages.analyze.tasks[0].prompt: ['word', 'word'" in message and len(message) < 600, message[:1000]


@pytest.mark.parametrize("template, problem", [
    ("../{stem}", "'..' would put outputs outside the output folder"),
    ("/tmp/{stem}", "an absolute path"),
    ("{unknown}", "unknown field(s) unknown"),
    ("{stem", "a brace that is not part of a field"),
    ("{stem.__class__}", "a brace that is not part of a field"),
    ("{stem!r}", "a brace that is not part of a field"),
])
def test_validate_refuses_templates_the_run_refuses(template, problem, tmp_path):
    spec = tmp_path / "p.yaml"
    spec.write_text(json.dumps({"name": "t", "stages": {"analyze": {"tasks": [{"prompt": "transcript"}]},
                                                         "export": {"template": template}}}))
    out = runpipe_cli("validate", spec)
    assert out.returncode == 2 and "ok:" not in out.stdout, out.stdout
    assert f"p.yaml:1: stages.export.template: {template!r}: {problem}" in out.stderr, out.stderr
    audio = tone_wav(tmp_path / "a.wav", 1)
    run = runpipe_cli(spec, audio, "-o", tmp_path / "out", env={"GEMINI_API_KEY": "unused"})
    assert run.returncode == 2 and problem in run.stderr, run.stderr
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob("*stem*"))


def _full_disk() -> None:
    """In the child: every file write past 0 bytes fails with EFBIG, as on a full disk
    (sqlite reports it as "disk I/O error" at PRAGMA journal_mode=WAL)."""
    import resource
    import signal

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write instead of killing the process
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))


@pytest.mark.parametrize("command", [["status"], ["cache", "info"]])
def test_run_store_on_a_full_disk_is_one_line_exit_3(command, tmp_path):
    tone_wav(tmp_path / "a.wav", 1)
    out = runpipe_cli(*command, env={"RUNPIPE_USER_PATH": str(tmp_path / "state")}, preexec_fn=_full_disk, cwd=tmp_path)
    assert out.returncode == 3, out.stderr
    assert out.stderr.strip() == (f"error: cannot use the run store {tmp_path / 'state' / 'runs.sqlite'}: disk I/O error "
                                  "(is the disk full?); make room or fix its folder, or point RUNPIPE_USER_PATH at another folder")


def test_damaged_run_store_is_set_aside_and_rebuilt(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / "runs.sqlite").write_bytes(b"this is not a database, just some bytes\n" * 100)
    out = runpipe_cli("status", env={"RUNPIPE_USER_PATH": str(state)})
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    (aside,) = state.glob("runs.sqlite.damaged-*")
    assert aside.read_bytes().startswith(b"this is not a database")
    assert f"run store {state / 'runs.sqlite'} is damaged (file is not a database); moved it to {aside.name}" in out.stderr
    # the new store works: a run is recorded and listed
    audio = tone_wav(tmp_path / "a.wav", 1)
    spec = tmp_path / "p.json"
    spec.write_text(json.dumps(SCRIPTED))
    with scripted_engine() as engine:
        engine.run(engine.load(spec), [str(audio)], output_dir=tmp_path / "out")
    assert json.loads(runpipe_cli("status", "--json").stdout)[0]["done"] == 1


def test_user_path_pointing_at_a_file(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    for command in (["status"], ["cache", "clear"], ["estimate", "podcast", str(blocker)]):
        out = runpipe_cli(*command, env={"RUNPIPE_USER_PATH": str(blocker / "sub")})
        assert out.returncode == 3, (command, out.stderr)
        assert out.stderr.strip() == f"error: RUNPIPE_USER_PATH={blocker / 'sub'}: {blocker} is a file, not a folder; point RUNPIPE_USER_PATH at a folder"
    assert blocker.read_text() == "x"


def test_status_of_an_unknown_run_and_a_negative_limit(tmp_path):
    out = runpipe_cli("status", "nosuchrun")
    assert out.returncode == 2 and "error: no run 'nosuchrun' in " in out.stderr and "`runpipe status` lists" in out.stderr
    out = runpipe_cli("status", "-n", "-5")
    assert out.returncode == 2 and "-5 is not in the range x>=1" in out.stderr


@pytest.mark.local_models  # the local backend is made ready before the inputs are looked at
def test_no_inputs_leaves_no_phantom_run(tmp_path):
    out = runpipe_cli("podcast", "-b", "local")
    assert out.returncode == 2 and "no inputs" in out.stderr, out.stderr
    assert json.loads(runpipe_cli("status", "--json").stdout) == []


def test_verbose_flag_before_or_after_the_command(tmp_path):
    """-v gives the traceback before and after the command; without it, one line."""
    for args in (["-v", "status", "nosuchrun"], ["status", "nosuchrun", "-v"], ["validate", "-v", str(tmp_path / "gone.yaml")]):
        out = runpipe_cli(*args)
        assert out.returncode == 2, (args, out.stderr)
    quiet, before, after = (runpipe_cli(*a, str(tmp_path / "gone.yaml")) for a in (["run"], ["-v", "run"], ["run", "-vv"]))
    assert "Traceback" not in quiet.stderr and quiet.returncode == 2
    assert "Traceback" in before.stderr and "Traceback" in after.stderr


def _exported_result(tmp_path: Path, formats=("json",)) -> Path:
    audio = tone_wav(tmp_path / "a.wav", 1)
    spec = {**SCRIPTED, "stages": {**SCRIPTED["stages"], "export": {"formats": list(formats)}}}
    with scripted_engine({"summary": "Hi.", "segments": [{**SEGMENT, "timestamp": "00:00"}]}) as engine:
        (result,) = engine.run(engine.load_dict(spec), [str(audio)], output_dir=tmp_path / "out").inputs
    assert result.status == "done", result.error
    return tmp_path / "out" / "a.json"


def _broken(data: dict, change: str):
    segment = data["segments"][0]
    if change == "array":
        return [data]
    if change == "string-start":
        segment["start"] = "00:01"
    elif change == "null-speaker":
        data["speakers"] = [{"label": None}]
    elif change == "null-content":
        segment["content"] = None
    elif change == "no-segments":
        del data["segments"]
    elif change == "unknown-segment-key":
        segment["colour"] = "red"
    return data


RESULT_FAULTS = {
    "array": r"not a runpipe JSON result \(a JSON list; expected an object with format 'runpipe.result/1'\)",
    "string-start": r"not a valid runpipe result: segments\[0\]\.start: '00:01' is not of type 'number'",
    "null-speaker": r"not a valid runpipe result: speakers\[0\]\.label: None is not of type 'string'",
    "null-content": r"not a valid runpipe result: segments\[0\]\.content: None is not of type 'string'",
    "no-segments": r"not a valid runpipe result: \(top level\): 'segments' is a required property",
    "unknown-segment-key": r"not a valid runpipe result: segments\[0\]: Additional properties are not allowed \('colour'",
}


@pytest.mark.parametrize("change", list(RESULT_FAULTS))
def test_export_checks_results_against_their_format(change, tmp_path):
    result = _exported_result(tmp_path)
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(_broken(json.loads(result.read_text()), change)))
    out = runpipe_cli("export", broken, "-f", "srt,vtt,md,txt,html", "-o", tmp_path / "re")
    assert out.returncode == 2, out.stderr
    (line,) = out.stderr.strip().splitlines()  # one line, no traceback
    assert line.startswith(f"error: {broken}: ") and re.search(RESULT_FAULTS[change], line), line
    assert not (tmp_path / "re").exists()
    assert runpipe_cli("export", result, "-f", "srt", "-o", tmp_path / "ok").returncode == 0  # the real one is fine


def test_export_html_says_when_the_normalized_audio_is_gone(tmp_path):
    result = _exported_result(tmp_path)
    audio = Path(json.loads(result.read_text())["media"]["path"])
    assert audio.is_file()
    audio.unlink()
    out = runpipe_cli("export", result, "-f", "html", "-o", tmp_path / "re")
    assert out.returncode == 0, out.stderr
    assert f"the normalized audio {audio} is gone" in out.stderr
    page = (tmp_path / "re" / "a.html").read_text()
    assert "is gone, so there is no player" in page and "<audio" not in page


# -- Ctrl-C: the real CLI in its own process group, SIGINT as a terminal sends it -----------------


def _ctrl_c_job(tmp_path: Path, server: FakeGemini, inputs: list[Path]):
    spec = tmp_path / "p.json"
    spec.write_text(json.dumps({**pipeline(server, inline_limit_bytes=50_000_000), "concurrency": 4}))
    env = {**os.environ, "RUNPIPE_DISABLE_PLUGIN_AUTOLOAD": "1"}
    args = [sys.executable, "-m", "runpipe", "-p", "no:retime", str(spec), *map(str, inputs), "-o", str(tmp_path / "out"),
            "--json", "--no-progress"]  # no retime: Whisper is not what these tests are about

    def start() -> subprocess.Popen:
        # its own session, like a shell's job: the Ctrl-C below reaches runpipe and its ffmpeg
        return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)

    def run() -> subprocess.CompletedProcess:
        return subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)

    return start, run


def _ctrl_c(process: subprocess.Popen, times: int = 1) -> tuple[str, str]:
    import signal
    import time

    for _ in range(times):
        os.killpg(process.pid, signal.SIGINT)
        time.sleep(0.3)
    # the server holds each answer for 60 s: exiting before then means nothing waited for it
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted; rerun the same command" in stderr, stderr
    return stdout, stderr


def _statuses() -> tuple[dict, dict[str, str]]:
    (last, *_) = json.loads(runpipe_cli("status", "--json").stdout)
    rows = json.loads(runpipe_cli("status", last["id"], "--json").stdout)
    return last, {Path(r["uri"]).name: r["status"] for r in rows}


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_with_requests_in_flight_stops_at_once(presses, server, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    inputs = [tone_wav(folder / f"{n}.wav", 1, freq=300 + 40 * n) for n in range(3)]
    server.default_response = Answer(GOOD, delay=60)
    start, run = _ctrl_c_job(tmp_path, server, inputs)
    process = start()
    wait_for(lambda: len(server.requests_to("generateContent")) == 3, "three requests in flight")
    _ctrl_c(process, presses)
    last, rows = _statuses()
    assert last["status"] == "interrupted" and last["unfinished"] == 3 and last["failed"] == 0
    assert rows == {"0.wav": "interrupted", "1.wav": "interrupted", "2.wav": "interrupted"}
    server.default_response = Answer(GOOD)
    rerun = run()
    assert rerun.returncode == 0, rerun.stderr
    assert [i["status"] for i in json.loads(rerun.stdout)["inputs"]] == ["done"] * 3


def test_ctrl_c_during_transcoding_records_no_invented_failure(server, tmp_path):
    """ffmpeg gets the same SIGINT; its cut-off exit is not read as a fault of the input."""
    folder = tmp_path / "in"
    folder.mkdir()
    inputs = []
    for n in range(2):  # long enough that the transcode is surely running when Ctrl-C comes
        tone = ffmpeg_python.input(f"sine=f={300 + 100 * n}:d=900", f="lavfi")
        ffmpeg.run(tone.output(str(folder / f"long{n}.wav"), ar=44100, ac=2))
        inputs.append(folder / f"long{n}.wav")
    start, run = _ctrl_c_job(tmp_path, server, inputs)
    process = start()
    normalized = user_dir() / "normalized"
    wait_for(lambda: normalized.is_dir() and any(".part" in p.name for p in normalized.iterdir()), "a transcode under way")
    _ctrl_c(process)
    last, rows = _statuses()
    assert last["status"] == "interrupted" and last["failed"] == 0, rows
    assert set(rows.values()) <= {"interrupted", "done"} and "interrupted" in rows.values()
    assert server.requests_to("generateContent") == []
    server.default_response = Answer(GOOD)
    rerun = run()
    assert rerun.returncode == 0, rerun.stderr
    assert [i["status"] for i in json.loads(rerun.stdout)["inputs"]] == ["done", "done"]


def test_a_rerun_on_one_input_keeps_the_others_on_the_batch_page(tmp_path):
    inputs = [tone_wav(tmp_path / f"{name}.wav", 1, freq=300 + 50 * n) for n, name in enumerate(("one", "two", "three"))]
    spec = {**SCRIPTED, "stages": {**SCRIPTED["stages"], "export": {"formats": ["json", "html"]}}}
    out = tmp_path / "out"
    with scripted_engine() as engine:
        engine.run(engine.load_dict(spec), [str(p) for p in inputs], output_dir=out)
        engine.run(engine.load_dict(spec), [str(inputs[1])], output_dir=out)
    page = (out / "index.html").read_text()
    assert page.count('class="input-row"') == 3
    assert all(f'href="{name}.html"' in page for name in ("one", "two", "three"))


def test_a_failed_write_leaves_none_of_the_inputs_outputs(tmp_path, monkeypatch):
    """The disk fills up at the fifth of five outputs: the four already written are removed."""
    import errno

    from runpipe import atomic

    real = atomic.write_atomic

    def full_at_html(path, data):
        if path.suffix == ".html":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(path, data)

    monkeypatch.setattr("runpipe.outputs.write_atomic", full_at_html)
    good, bad = tone_wav(tmp_path / "good.wav", 1), tone_wav(tmp_path / "bad.wav", 1, freq=330)
    spec = {**SCRIPTED, "stages": {**SCRIPTED["stages"], "export": {"formats": ["json", "srt", "vtt", "md", "html"]}}}
    with scripted_engine() as engine:
        (result,) = engine.run(engine.load_dict(spec), [str(bad)], output_dir=tmp_path / "out").inputs
    assert result.status == "failed" and "No space left on device" in result.error, result.error
    assert list((tmp_path / "out").iterdir()) == [] and not result.artifacts
    monkeypatch.setattr("runpipe.outputs.write_atomic", real)
    with scripted_engine() as engine:
        (result,) = engine.run(engine.load_dict(spec), [str(good)], output_dir=tmp_path / "out").inputs
    assert result.status == "done" and len(result.artifacts) == 5


def test_estimate_exits_1_when_an_input_cannot_be_read(tmp_path):
    (tmp_path / "notes.mp3").write_text("not audio\n")
    tone_wav(tmp_path / "good.wav", 1)
    for extra in ([], ["--json"]):
        out = runpipe_cli("estimate", "podcast", tmp_path / "notes.mp3", tmp_path / "good.wav", *extra)
        assert out.returncode == 1, (extra, out.stderr)
    assert json.loads(out.stdout)[0]["error"].startswith("notes.mp3: not readable as audio")


def test_two_runs_on_the_same_input_pay_once(server, tmp_path):
    """A per-input lock: the second run waits for the first, then uses its stored answer."""
    audio = tone_wav(tmp_path / "a.wav", 2)
    server.default_response = Answer(GOOD, delay=10)  # the second run is surely up before this is answered
    start, _ = _ctrl_c_job(tmp_path, server, [audio])
    first = start()
    wait_for(lambda: len(server.requests_to("generateContent")) == 1, "the first run's request")
    second = start()
    outputs = [p.communicate(timeout=120) for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], [e for _, e in outputs]
    assert len(server.requests_to("generateContent")) == 1
    summary = json.loads(outputs[1][0])
    assert summary["inputs"][0]["status"] == "done"
    assert "waiting for another runpipe that is working on this input" in " ".join(summary["messages"])
