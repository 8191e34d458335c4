"""Built-ins compete on equal terms: the core names no plugin, and blocking one leaves a pipeline
that never named it working."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import yaml

from answers import TRANSCRIPT
from conftest import ROOT
from runpipe import hookimpl
from runpipe.errors import AnswerTooLong, BackendUnavailable, PluginError
from runpipe.interfaces import Backend, PostProcessor
from runpipe.plugin_manager import plugin_name
from runpipe.testing import ScriptedBackendPlugin, make_engine, tone_wav

TESTS = ROOT / "tests"
PODCAST_YAML = ROOT / "pipelines" / "podcast.yaml"


def runpipe(*args: str, cwd, env=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]), **(env or {})}
    return subprocess.run([sys.executable, "-m", "runpipe", *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=300)


# -- -p as pytest has it ---------------------------------------------------------------------------


def test_short_and_full_names_block_a_builtin():
    assert plugin_name("retime") == plugin_name("runpipe.plugins.retime") == "runpipe.plugins.retime"
    with make_engine(blocked=["retime", "gemini"]) as engine:
        assert "retime" not in engine.registries.postprocessors and "gemini" not in engine.registries.backends
        assert "speakers" in engine.registries.postprocessors


def test_unknown_plugin_name_is_an_error_listing_the_known_ones(tmp_path):
    with pytest.raises(PluginError, match="no plugin called 'typo'; known plugins: sources, .*retime.*gemini|gemini.*retime"):
        make_engine(blocked=["typo"])
    out = runpipe("-p", "no:typo", "validate", str(PODCAST_YAML), cwd=tmp_path)
    assert out.returncode == 2 and "no plugin called 'typo'" in out.stderr and "retime" in out.stderr
    assert "Traceback" not in out.stderr


def test_p_is_accepted_by_every_command_before_and_after_it(tmp_path):
    for args in (["-p", "no:retime", "validate", str(PODCAST_YAML)], ["validate", "-p", "no:retime", str(PODCAST_YAML)],
                 ["-p", "no:html_report", "plugins", "--json"], ["plugins", "-p", "no:html_report", "--json"]):
        out = runpipe(*args, cwd=tmp_path)
        assert out.returncode == 0, (args, out.stderr)
    names = {p["name"] for p in json.loads(out.stdout)["plugins"]}
    assert "runpipe.plugins.html_report" not in names and "runpipe.plugins.exporters" in names


def test_p_module_loads_a_plugin_by_import_name(tmp_path):
    out = runpipe("-p", "scripted_plugin", "plugins", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert any(p["registered"].get("backends") == ["scripted"] for p in json.loads(out.stdout)["plugins"])
    out = runpipe("-p", "no_such_module_xyz", "plugins", cwd=tmp_path)
    assert out.returncode == 3 and "cannot import plugin module 'no_such_module_xyz'" in out.stderr


def test_blocking_the_default_steps_leaves_the_podcast_pipeline_working(tmp_path):
    audio = tone_wav(tmp_path / "a.wav", 25)
    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps([TRANSCRIPT]))
    assert "postprocess" not in yaml.safe_load(PODCAST_YAML.read_text())["stages"]  # it names neither step
    out = runpipe("-p", "no:retime", "-p", "no:speakers", "-p", "scripted_plugin", str(PODCAST_YAML), str(audio),
                  "--backend", "scripted", "-o", str(tmp_path / "out"), "--json", "--no-progress", cwd=tmp_path,
                  env={"SCRIPTED_ANSWERS": str(answers)})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["ok"] is True
    result = json.loads((tmp_path / "out" / "a.json").read_text())
    assert result["backend"] == "scripted" and len(result["segments"]) == 3
    # neither step ran: the backend's times stand, and no re-timing note
    assert {s["timing"] for s in result["segments"]} == {"model"} and not any("re-timed" in n for n in result["notes"])


def test_essential_plugins_cannot_be_blocked():
    with pytest.raises(PluginError, match="essential"):
        make_engine(blocked=["exporters"])


# -- post-processors say whether they are on by default -------------------------------------------


class Shout(PostProcessor):
    name = "shout"
    on_by_default = True

    def process(self, document):
        import dataclasses

        return dataclasses.replace(document, notes=document.notes + ("shouted",))


class ShoutPlugin:
    @hookimpl
    def runpipe_register_postprocessors(self, register):
        register(Shout)


def test_default_steps_come_from_the_registry_in_registration_order():
    with make_engine([ShoutPlugin()], postprocess=True) as engine:
        pipeline = engine.load_dict({"name": "t", "stages": {"analyze": {"tasks": [{"prompt": "transcript"}]}}})
        assert [s.name for s in engine.postprocess_steps(pipeline)] == ["retime", "speakers", "shout"]
        listed = engine.load_dict({"name": "t", "stages": {"analyze": {"tasks": [{"prompt": "transcript"}]}, "postprocess": {"steps": []}}})
        assert engine.postprocess_steps(listed) == ()
    with make_engine([ShoutPlugin()], postprocess=True, blocked=["retime", "speakers"]) as engine:
        assert [s.name for s in engine.postprocess_steps(pipeline)] == ["shout"]


def test_a_third_party_default_step_runs_for_a_pipeline_that_names_no_step(tmp_path):
    backend_plugin = ScriptedBackendPlugin(TRANSCRIPT)
    spec = {"name": "t", "stages": {"analyze": {"backend": "scripted", "tasks": [{"prompt": "transcript"}]}}}
    with make_engine([backend_plugin, ShoutPlugin()], postprocess=True, blocked=["retime", "speakers"]) as engine:
        result = engine.run(engine.load_dict(spec), [str(tone_wav(tmp_path / "a.wav", 2))], output_dir=tmp_path / "out")
    assert result.inputs[0].documents[0].notes[-1] == "shouted"


# -- backends rank themselves for `backend: auto` -------------------------------------------------


def test_auto_picks_the_highest_ranked_backend_that_can_run(monkeypatch):
    class Eager(Backend):
        name = "eager"
        auto_rank = 100

        @classmethod
        def unavailable_reason(cls):
            return "eager: set EAGER_TOKEN" if not os.environ.get("EAGER_TOKEN") else None

        def analyze(self, audio, task, *, window=None):
            raise NotImplementedError

    class Plugin:
        @hookimpl
        def runpipe_register_backends(self, register):
            register(Eager)

    with make_engine([Plugin()], blocked=["gemini", "local"]) as engine:
        with pytest.raises(BackendUnavailable, match="eager: set EAGER_TOKEN"):
            engine.resolve_backend("auto")
        monkeypatch.setenv("EAGER_TOKEN", "x")
        assert engine.resolve_backend("auto") == "eager"
    with make_engine([ScriptedBackendPlugin()], blocked=["gemini", "local"]) as engine:
        with pytest.raises(BackendUnavailable, match="no registered backend takes part in `backend: auto`.*scripted"):
            engine.resolve_backend("auto")


ENTRY_POINT_BACKEND = '''
from runpipe import hookimpl
from runpipe.interfaces import Backend
from runpipe.model import Analysis


class ThirdPartyBackend(Backend):
    name = "thirdparty"
    auto_rank = 1

    def analyze(self, audio, task, *, window=None):
        return Analysis(task=task.name, data={"summary": "from the third party", "segments": []},
                        backend=self.name, model="tp-1")


@hookimpl
def runpipe_register_backends(register):
    register(ThirdPartyBackend)
'''


def test_a_backend_registered_through_the_entry_point_wins_auto_when_builtins_are_blocked(tmp_path):
    site = tmp_path / "site"
    (site / "runpipe_thirdparty_backend-1.0.dist-info").mkdir(parents=True)
    (site / "runpipe_thirdparty_backend.py").write_text(ENTRY_POINT_BACKEND)
    info = site / "runpipe_thirdparty_backend-1.0.dist-info"
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: runpipe-thirdparty-backend\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[runpipe]\nthirdparty = runpipe_thirdparty_backend\n")
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(textwrap.dedent("""\
        name: p
        stages:
          analyze:
            backend: auto
            tasks: [{prompt: transcript}]
          export: {formats: [json]}
        """))
    audio = tone_wav(tmp_path / "a.wav", 2)
    env = {"PYTHONPATH": str(site)}
    out = runpipe("-p", "no:gemini", "-p", "no:local", str(pipeline), str(audio), "-o", str(tmp_path / "out"),
                  "--json", "--no-progress", cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    result = json.loads((tmp_path / "out" / "a.json").read_text())
    assert result["backend"] == "thirdparty" and result["summary"] == "from the third party"
    # with the built-ins loaded, Gemini (rank 20) wins once a key is set
    out = runpipe("-p", "no:local", "estimate", str(pipeline), str(audio), "--json", cwd=tmp_path,
                  env={**env, "GEMINI_API_KEY": "k"})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)[0]["tasks"][0]["backend"] == "gemini"


# -- a core error type for "answer too long" --------------------------------------------------------


def test_answer_too_long_from_any_backend_splits_the_window(tmp_path):
    half = {"summary": "half", "segments": []}
    backend_plugin = ScriptedBackendPlugin(AnswerTooLong("cut off"), half, half)
    spec = {"name": "t", "stages": {"analyze": {"backend": "scripted", "chunking": {"min_split_seconds": 5},
                                                "tasks": [{"prompt": "transcript"}]}, "postprocess": {"steps": []}}}
    with make_engine([backend_plugin]) as engine:
        result = engine.run(engine.load_dict(spec), [str(tone_wav(tmp_path / "a.wav", 20))], output_dir=tmp_path / "out")
    (item,) = result.inputs
    assert item.status == "done", item.error
    # the whole audio, then its two halves cut out (a tone has no silence: split near the middle)
    durations = [audio.duration for audio, _, _ in backend_plugin.calls]
    assert len(durations) == 3 and durations[0] == pytest.approx(20.0, abs=0.05)
    assert all(10 <= d <= 13 for d in durations[1:])  # half of 20 s, plus the windows' overlap
    floor = {**spec, "stages": {**spec["stages"], "analyze": {**spec["stages"]["analyze"], "chunking": {"min_split_seconds": 15}}}}
    with make_engine([ScriptedBackendPlugin(AnswerTooLong("cut off"))]) as engine:
        (item,) = engine.run(engine.load_dict(floor), [str(tone_wav(tmp_path / "b.wav", 20, freq=300))], output_dir=tmp_path / "out").inputs
    assert item.status == "failed" and "windows are not split below 15 s" in item.error


# -- registration goes through pluggy --------------------------------------------------------------


def test_registration_hooks_are_traced_and_wrapped(monkeypatch, capsys):
    seen = []

    class Wrapper:
        @hookimpl(wrapper=True)
        def runpipe_register_exporters(self, register):
            seen.append(register)
            return (yield)

    monkeypatch.setenv("RUNPIPE_TRACE_HOOKS", "1")
    with make_engine([Wrapper()]) as engine:
        assert "srt" in engine.registries.exporters
    assert "[runpipe hook] runpipe_register_backends(register)" in capsys.readouterr().err
    assert len(seen) >= 2  # called once per plugin that registers exporters (built-ins and the HTML report)


def test_estimate_uses_the_normalize_hook(tmp_path):
    calls = []

    class Watch:
        @hookimpl(wrapper=True)
        def runpipe_normalize(self, item, run):
            calls.append(item.name)
            return (yield)

    from runpipe.estimate import estimate

    with make_engine([Watch()]) as engine:
        pipeline = engine.load_dict({"name": "t", "stages": {"analyze": {"backend": "gemini", "tasks": [{"prompt": "transcript"}]}}})
        (row,) = estimate(engine, pipeline, [str(tone_wav(tmp_path / "a.wav", 2))], backend=None, count_tokens=False)
    assert calls == ["a.wav"] and row["delivery"] == "inline"
    assert row["requests"] == 2 and row["audio_tokens"] == 2 * 64  # 2 s at 32 tokens/s, heard by the transcript and its timeline


class StageWatch:
    """Records the stage hooks every command goes through, and keeps only the JSON artifact."""

    def __init__(self):
        self.events = []

    @hookimpl(wrapper=True)
    def runpipe_export(self, document, run):
        artifacts = yield
        self.events.append(("export", document.task, sorted(a.format for a in artifacts)))
        return [a for a in artifacts if a.format != "txt"]

    @hookimpl
    def runpipe_stage_finish(self, stage, item, value, run):
        self.events.append(("finish", stage, item.name))

    @hookimpl
    def runpipe_stage_error(self, stage, item, error, run):
        self.events.append(("error", stage, item.name))


def test_runpipe_export_goes_through_the_export_hooks(tmp_path):
    from runpipe.reexport import reexport

    spec = {"name": "t", "stages": {"analyze": {"backend": "scripted", "tasks": [{"prompt": "transcript"}]},
                                    "postprocess": {"steps": []}, "export": {"formats": ["json"]}}}
    with make_engine([ScriptedBackendPlugin(TRANSCRIPT)]) as engine:
        engine.run(engine.load_dict(spec), [str(tone_wav(tmp_path / "a.wav", 2))], output_dir=tmp_path / "out")
    watch = StageWatch()
    with make_engine([watch]) as engine:
        artifacts = reexport(engine, tmp_path / "out" / "a.json", ["srt", "txt"], ["Speaker 1=Ada"], [], tmp_path / "again")
    assert watch.events == [("export", "transcript", ["srt", "txt"]), ("finish", "export", "a.wav")]
    assert [a.format for a in artifacts] == ["srt"]  # what the wrapper let through
    assert [a.path.name for a in artifacts] == ["a.srt"] and (tmp_path / "again" / "a.txt").exists()
    assert "Ada: Welcome back" in (tmp_path / "again" / "a.srt").read_text()


def test_runpipe_estimate_goes_through_the_stage_hooks(tmp_path):
    from runpipe.estimate import estimate

    (tmp_path / "bad.wav").write_bytes(b"not audio at all")
    watch = StageWatch()
    with make_engine([ScriptedBackendPlugin(), watch]) as engine:
        pipeline = engine.load_dict({"name": "t", "stages": {"analyze": {"backend": "scripted", "tasks": [{"prompt": "transcript"}]}}})
        rows = estimate(engine, pipeline, [str(tone_wav(tmp_path / "a.wav", 2)), str(tmp_path / "bad.wav")], backend=None, count_tokens=False)
    assert watch.events == [("finish", "normalize", "a.wav"), ("error", "normalize", "bad.wav")]
    assert rows[1]["error"].startswith("bad.wav: ")


def test_a_backend_that_cannot_estimate_says_its_audio_stays_here(tmp_path):
    from runpipe.estimate import estimate

    with make_engine([ScriptedBackendPlugin()]) as engine:
        pipeline = engine.load_dict({"name": "t", "stages": {"analyze": {"backend": "scripted", "tasks": [{"prompt": "transcript"}]}}})
        (row,) = estimate(engine, pipeline, [str(tone_wav(tmp_path / "a.wav", 2))], backend=None, count_tokens=False)
    assert row["audio_tokens"] is None and row["request_bytes"] is None and row["delivery"] == "local"
