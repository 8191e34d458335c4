"""Contract tests a plugin's test suite inherits: subclass one, say which component it tests, and
pytest runs every test of the contract on it. runpipe's built-ins run the same classes.

::

    from runpipe.testing.contracts import ExporterContract
    from my_plugin import CsvExporter

    class TestCsv(ExporterContract):
        exporter_class = CsvExporter

    class TestGemini(BackendContract):
        backend_class = GeminiBackend

        @pytest.fixture
        def backend(self, my_fake_server):  # override to build it against a fake service
            return GeminiBackend({"base_url": my_fake_server.base_url})

The classes are named without a ``Test`` prefix so pytest collects only your subclasses.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar

import jsonschema
import pytest

from runpipe.errors import PipelineConfigError
from runpipe.interfaces import Backend, Estimate, Exporter
from runpipe.model import Analysis, AudioFile, Document, MediaItem, Segment, Speaker, Task
from runpipe.testing import make_document, tone_wav

UNICODE = "Grüße, 東京 — ça va? 🎙️ <b>&amp;</b> \"quoted\""


class ExporterContract:
    """Every exporter: a pure ``render`` that takes any valid document, including an empty one
    and text in any script, and gives the same bytes for the same document."""

    exporter_class: ClassVar[type[Exporter]]
    #: Options the exporter is built with in these tests.
    options: ClassVar[dict[str, Any]] = {}

    @pytest.fixture
    def exporter(self) -> Exporter:
        return self.exporter_class(dict(self.options))

    @pytest.fixture
    def document(self) -> Document:
        return make_document(
            [(0.0, 2.5, "Welcome back.", "Speaker 1"), (2.5, 61.25, UNICODE, "Speaker 2"),
             Segment(3661.5, 3663.0, "Past an hour.", speaker="Speaker 1", language="German", translation="Past an hour.")],
            fields={"summary": "Two speakers. " + UNICODE}, speakers=(Speaker("Speaker 1", "Ada"), Speaker("Speaker 2")),
            notes=("a note",),
        )

    def test_names_a_format_and_a_suffix(self):
        assert isinstance(self.exporter_class.format, str) and self.exporter_class.format
        assert self.exporter_class.suffix.startswith(".") and len(self.exporter_class.suffix) > 1

    def test_renders_text_or_bytes(self, exporter, document):
        assert isinstance(exporter.render(document), (str, bytes))

    def test_rendering_is_deterministic(self, exporter, document):
        assert exporter.render(document) == exporter.render(document)

    def test_renders_an_empty_document(self, exporter):
        assert isinstance(exporter.render(make_document(fields={"summary": ""})), (str, bytes))

    def test_keeps_text_in_any_script(self, exporter, document):
        output = exporter.render(document)
        text = output.decode("utf-8") if isinstance(output, bytes) else output
        assert "東京" in text or "\\u6771\\u4eac" in text or "&#26481;" in text

    def test_does_not_change_the_document(self, exporter, document):
        before = dataclasses.replace(document)
        exporter.render(document)
        assert document == before

    def test_unknown_options_are_errors(self):
        with pytest.raises(PipelineConfigError, match="no_such_option"):
            self.exporter_class({**self.options, "no_such_option": 1})


class BackendContract:
    """Every backend: a name, cheap construction that rejects unknown options, a clear answer to
    "can you run here?", an estimate without a request, and answers that fit the task's schema."""

    backend_class: ClassVar[type[Backend]]
    options: ClassVar[dict[str, Any]] = {}
    #: The schema the analyze test asks for (one the backend fills).
    schema_name: ClassVar[str] = "transcript"

    @pytest.fixture
    def backend(self) -> Backend:
        """The backend under test; override to point it at a fake service."""
        return self.backend_class(dict(self.options))

    @pytest.fixture
    def audio(self, tmp_path: Path) -> AudioFile:
        path = tone_wav(tmp_path / "tone.wav", 2.0)
        return AudioFile(source=MediaItem(str(path), "file", path.name), path=path, mime_type="audio/wav",
                         duration=2.0, content_hash="contract-" + "0" * 56, sample_rate=16000, channels=1,
                         bytes_before=path.stat().st_size, bytes_after=path.stat().st_size)

    @pytest.fixture
    def task(self) -> Task:
        from runpipe.paths import builtin_schemas_dir

        schema = json.loads((builtin_schemas_dir() / f"{self.schema_name}.schema.json").read_text(encoding="utf-8"))
        return Task(name="contract", prompt="Transcribe the audio.", schema_name=self.schema_name, schema=schema)

    def test_has_a_name_and_an_auto_rank_that_is_a_number_or_none(self):
        assert isinstance(self.backend_class.name, str) and self.backend_class.name
        assert self.backend_class.auto_rank is None or isinstance(self.backend_class.auto_rank, int)

    def test_says_whether_it_can_run_here(self):
        reason = self.backend_class.unavailable_reason()
        assert reason is None or (isinstance(reason, str) and reason.strip())

    def test_unknown_options_are_errors(self):
        with pytest.raises(PipelineConfigError, match="no_such_option"):
            self.backend_class({**self.options, "no_such_option": 1})

    def test_declares_the_schemas_it_fills(self):
        schemas = self.backend_class.schemas()
        assert schemas is None or (schemas and all(isinstance(s, str) for s in schemas))
        assert schemas is None or self.schema_name in schemas

    def test_estimates_without_a_request(self, backend, audio, task):
        estimate = backend.estimate(audio, task)
        assert isinstance(estimate, Estimate) and estimate.delivery
        assert estimate.audio_tokens is None or estimate.audio_tokens >= 0

    def test_answers_on_the_schema(self, backend, audio, task):
        if self.backend_class.unavailable_reason() is not None:
            pytest.skip(f"{self.backend_class.name} cannot run here: {self.backend_class.unavailable_reason()}")
        backend.warm_up()
        try:
            analysis = backend.analyze(audio, task)
        finally:
            backend.close()
        assert isinstance(analysis, Analysis) and analysis.task == task.name and analysis.backend == self.backend_class.name
        jsonschema.validate(analysis.data, task.schema)
