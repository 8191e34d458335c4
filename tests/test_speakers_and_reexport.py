"""Speaker names set once in the pipeline reach every export and the prompt; the JSON result
re-exports with new names or subtitle settings without a backend or the audio."""

import json
import os
import subprocess
import sys

import pytest
import srt

from answers import TRANSCRIPT
from conftest import sample_copy
from runpipe.testing import ScriptedBackendPlugin, make_engine

FORMATS = ["json", "srt", "vtt", "md", "txt", "html"]


def pipeline(names) -> dict:
    return {
        "name": "t",
        "speakers": {"count": 2, "names": names},
        "stages": {
            "analyze": {"backend": "scripted", "tasks": [{"prompt": "transcript"}]},
            "postprocess": {"steps": []},
            "export": {"formats": FORMATS},
        },
    }


@pytest.mark.parametrize("names", [["Ada", "Grace"], {"Speaker 1": "Ada", "Speaker 2": "Grace"}], ids=["list", "map"])
def test_names_reach_every_export_and_the_prompt(tmp_path, names):
    backend_plugin = ScriptedBackendPlugin(TRANSCRIPT)
    with make_engine([backend_plugin]) as engine:
        result = engine.run(engine.load_dict(pipeline(names)), [str(sample_copy(tmp_path / "in"))], output_dir=tmp_path / "out")
    assert result.ok, result.inputs[0].error
    (_, task, _), = backend_plugin.calls
    assert "There are exactly 2 speakers." in task.prompt
    assert "Speaker 1 is Ada" in task.prompt and "Speaker 2 is Grace" in task.prompt
    assert task.options["num_speakers"] == 2
    out = tmp_path / "out"
    data = json.loads((out / "podcast_sample.json").read_text())
    assert data["speakers"] == [{"label": "Speaker 1", "name": "Ada"}, {"label": "Speaker 2", "name": "Grace"}]
    assert [s["speaker"] for s in data["segments"]] == ["Speaker 1", "Speaker 2", "Speaker 2"]  # labels stay stable
    assert "Ada: Welcome back" in (out / "podcast_sample.srt").read_text()
    assert "<v Grace>Thanks for having me." in (out / "podcast_sample.vtt").read_text()
    assert "**Grace**" in (out / "podcast_sample.md").read_text()
    assert "Ada: Welcome back" in (out / "podcast_sample.txt").read_text()
    assert "Grace" in (out / "podcast_sample.html").read_text()


def test_reexport_renames_and_changes_subtitle_settings_without_audio(tmp_path):
    backend_plugin = ScriptedBackendPlugin(TRANSCRIPT)
    audio = sample_copy(tmp_path / "in")
    with make_engine([backend_plugin]) as engine:
        engine.run(engine.load_dict(pipeline(None) | {"speakers": {}}), [str(audio)], output_dir=tmp_path / "out")
    result = tmp_path / "out" / "podcast_sample.json"
    audio.unlink()  # the audio is not needed any more
    calls = len(backend_plugin.calls)
    env = {**os.environ, "RUNPIPE_DISABLE_PLUGIN_AUTOLOAD": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "runpipe", "export", str(result), "--format", "srt,vtt,md,txt", "--rename", "Speaker 1=Ada",
         "--rename", "Speaker 2=Grace", "--option", "srt.max_line_chars=20", "-o", str(tmp_path / "again")],
        capture_output=True, text=True, env=env,
    )
    assert out.returncode == 0, out.stderr
    assert len(backend_plugin.calls) == calls
    subs = list(srt.parse((tmp_path / "again" / "podcast_sample.srt").read_text()))
    assert subs[0].content.startswith("Ada: ")
    assert all(len(line) <= 20 for s in subs for line in s.content.removeprefix("Ada: ").removeprefix("Grace: ").splitlines())
    assert "<v Grace>" in (tmp_path / "again" / "podcast_sample.vtt").read_text()
    assert "**Ada**" in (tmp_path / "again" / "podcast_sample.md").read_text()
    # the JSON result itself is the source of truth and stays unchanged
    assert json.loads(result.read_text())["speakers"][0]["name"] is None


def test_rename_of_unknown_speaker_is_explained(tmp_path):
    backend_plugin = ScriptedBackendPlugin(TRANSCRIPT)
    with make_engine([backend_plugin]) as engine:
        engine.run(engine.load_dict(pipeline(None) | {"speakers": {}}), [str(sample_copy(tmp_path / "in"))], output_dir=tmp_path / "out")
    out = subprocess.run([sys.executable, "-m", "runpipe", "export", str(tmp_path / "out" / "podcast_sample.json"),
                          "--rename", "Speaker 9=Zed"], capture_output=True, text=True)
    assert out.returncode == 2 and "no speaker 'Speaker 9'" in out.stderr


def test_export_refuses_a_file_that_is_not_a_result(tmp_path):
    bogus = tmp_path / "x.json"
    bogus.write_text('{"hello": 1}')
    out = subprocess.run([sys.executable, "-m", "runpipe", "export", str(bogus)], capture_output=True, text=True)
    assert out.returncode == 2 and "not a runpipe JSON result" in out.stderr
