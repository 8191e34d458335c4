"""Built-in export formats: json, srt, vtt, md, txt; and the export stage that writes them."""

from __future__ import annotations

from runpipe.hookspecs import hookimpl
from runpipe.model import Artifact, Document
from runpipe.outputs import output_path, output_stem, write_outputs
from runpipe.plugins.exporters.json_export import JsonExporter
from runpipe.plugins.exporters.markdown import MarkdownExporter
from runpipe.plugins.exporters.subtitles import SrtExporter, VttExporter
from runpipe.plugins.exporters.text import TextExporter
from runpipe.run import RunContext


@hookimpl
def runpipe_register_exporters(register):
    for exporter in (JsonExporter, SrtExporter, VttExporter, MarkdownExporter, TextExporter):
        register(exporter)


@hookimpl(trylast=True)
def runpipe_export(document: Document, run: RunContext) -> list[Artifact]:
    stem = output_stem(run.pipeline.export.template, document, run)
    # Render everything first: a failing exporter then leaves no partial set of files behind.
    rendered = []
    for fmt in run.pipeline.export.formats:
        exporter = run.exporter(fmt)
        rendered.append((fmt.name, output_path(run.output_dir, stem, exporter.suffix), exporter.render(document)))
    return write_outputs(rendered)
