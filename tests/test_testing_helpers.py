"""runpipe.testing, as plugin authors use it."""

import os

from answers import TRANSCRIPT
from runpipe.testing import ScriptedBackend, ScriptedBackendPlugin, make_document, make_engine, tone_wav

SPEC = {"name": "t", "stages": {"analyze": {"backend": "scripted", "tasks": [{"prompt": "transcript"}]}, "export": {"formats": ["json"]}}}


def test_each_plugin_owns_its_script(tmp_path):
    one, two = ScriptedBackendPlugin(TRANSCRIPT), ScriptedBackendPlugin({"summary": "other", "segments": []})
    with make_engine([one]) as first, make_engine([two]) as second:
        a = first.run(first.load_dict(SPEC), [str(tone_wav(tmp_path / "a.wav", 2))], output_dir=tmp_path / "one")
        b = second.run(second.load_dict(SPEC), [str(tone_wav(tmp_path / "b.wav", 3))], output_dir=tmp_path / "two")
    assert a.inputs[0].documents[0].summary == TRANSCRIPT["summary"] and b.inputs[0].documents[0].summary == "other"
    assert len(one.calls) == len(two.calls) == 1 and not one.answers and not two.answers
    one.queue(TRANSCRIPT)
    assert len(one.answers) == 1 and not two.answers and not ScriptedBackendPlugin().answers
    assert not hasattr(ScriptedBackend, "queue") and not hasattr(ScriptedBackend, "answers")  # no class-level script


def test_a_scripted_backend_made_directly_has_a_script_of_its_own():
    from runpipe.testing import Script

    first, second = ScriptedBackend(), ScriptedBackend()
    first.script.answers.append({"summary": "mine", "segments": []})
    assert first.script is not second.script and not second.script.answers
    shared = ScriptedBackendPlugin(TRANSCRIPT)
    assert isinstance(shared.script, Script) and shared.backend().script is shared.backend().script is shared.script


def test_make_engine_runs_no_default_steps_unless_asked(tmp_path):
    with make_engine([ScriptedBackendPlugin(TRANSCRIPT)]) as engine:
        assert engine.postprocess_steps(engine.load_dict(SPEC)) == ()
    with make_engine([ScriptedBackendPlugin(TRANSCRIPT)], postprocess=True) as engine:
        assert [s.name for s in engine.postprocess_steps(engine.load_dict(SPEC))] == ["retime", "speakers"]


def test_make_document_builds_a_renderable_document():
    from runpipe.plugins.exporters.subtitles import SrtExporter

    document = make_document([(0.0, 1.5, "Hello.", "Speaker 1"), (1.5, 3.0, "Hi.", "Speaker 2")], notes=("n",))
    assert [s.label for s in document.speakers] == ["Speaker 1", "Speaker 2"] and document.audio.duration == 3.0
    assert "Speaker 1: Hello.\n\n2\n" in SrtExporter().render(document) and document.notes == ("n",)


def test_the_fixtures_isolate_the_run_store(runpipe_isolated, runpipe_engine, tmp_path):
    assert os.environ["RUNPIPE_USER_PATH"] == str(runpipe_isolated) and "GEMINI_API_KEY" not in os.environ
    assert runpipe_engine.store.path.is_relative_to(tmp_path)
