"""The built-ins and the example plugin run the same contract tests third-party plugins inherit."""

import pytest

from runpipe.plugins.exporters.json_export import JsonExporter
from runpipe.plugins.exporters.markdown import MarkdownExporter
from runpipe.plugins.exporters.subtitles import SrtExporter, VttExporter
from runpipe.plugins.exporters.text import TextExporter
from runpipe.plugins.gemini import GeminiBackend
from runpipe.plugins.html_report.exporter import HtmlExporter
from runpipe.plugins.local.backend import LocalBackend
from runpipe.testing import ScriptedBackend
from runpipe.testing.contracts import BackendContract, ExporterContract
from runpipe.testing.gemini_server import Answer, FakeGemini


class TestJson(ExporterContract):
    exporter_class = JsonExporter


class TestSrt(ExporterContract):
    exporter_class = SrtExporter


class TestVtt(ExporterContract):
    exporter_class = VttExporter


class TestMarkdown(ExporterContract):
    exporter_class = MarkdownExporter


class TestText(ExporterContract):
    exporter_class = TextExporter


class TestHtml(ExporterContract):
    exporter_class = HtmlExporter


class TestExampleCsv(ExporterContract):
    from runpipe_highlights import CsvExporter as exporter_class  # noqa: N813 - the contract's attribute


class TestScripted(BackendContract):
    backend_class = ScriptedBackend


class TestGemini(BackendContract):
    backend_class = GeminiBackend

    @pytest.fixture
    def backend(self, monkeypatch):
        with FakeGemini() as server:
            monkeypatch.setenv("GEMINI_API_KEY", server.api_key)
            server.script(Answer({"summary": "A tone.", "segments": []}))
            yield GeminiBackend({"base_url": server.base_url, "retry_base_delay": 0.01})


@pytest.mark.local_models  # runs Whisper
class TestLocal(BackendContract):
    """The answer test needs the offline models (runpipe[local]); the rest runs anywhere."""

    backend_class = LocalBackend

    @pytest.mark.local_models
    def test_answers_on_the_schema(self, backend, audio, task):
        super().test_answers_on_the_schema(backend, audio, task)
