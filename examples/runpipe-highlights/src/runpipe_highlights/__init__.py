"""An example third-party runpipe plugin.

It adds two things through runpipe's registration hooks:

* the ``csv`` export format: one row per segment (start, end, speaker, language, text,
  translation), for spreadsheets and QDA tools;
* the ``highlights`` prompt with its own response schema: the most quotable moments of a
  recording, each with a timestamp, speaker and why it matters.
"""

from __future__ import annotations

import csv
import io
import json
from importlib import resources

from runpipe import Document, Exporter, Prompt, hookimpl


class CsvExporter(Exporter):
    format = "csv"
    suffix = ".csv"
    description = "one row per segment, for spreadsheets"
    option_names = ("delimiter",)

    def render(self, document: Document) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=self.options.get("delimiter", ","), lineterminator="\n")
        writer.writerow(["start", "end", "speaker", "language", "text", "translation"])
        for segment in document.segments:
            writer.writerow([
                f"{segment.start:.3f}",
                "" if segment.end is None else f"{segment.end:.3f}",
                document.speaker_name(segment.speaker) or "",
                segment.language_code or "",
                segment.content,
                segment.translation or "",
            ])
        return buffer.getvalue()


HIGHLIGHTS_PROMPT = """\
Listen to the recording and pick its most quotable moments: at most five short verbatim quotes
that capture what matters. For each give its start as MM:SS, the speaker (Speaker 1, Speaker 2,
... or a name), the exact quote and one sentence on why it matters. Also give a one-paragraph
summary. Also transcribe the recording as segments (speaker, MM:SS timestamp, content)."""


@hookimpl
def runpipe_register_exporters(register):
    register(CsvExporter)


@hookimpl
def runpipe_register_prompts(register):
    schema = json.loads(resources.files(__name__).joinpath("highlights.schema.json").read_text(encoding="utf-8"))
    register(Prompt(name="highlights", text=HIGHLIGHTS_PROMPT, schema=schema, description="the most quotable moments"))
