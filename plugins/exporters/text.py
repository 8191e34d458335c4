"""Plain text: the transcript, optionally with timestamps and speaker names."""

from __future__ import annotations

from runpipe.interfaces import Exporter
from runpipe.model import Document
from runpipe.timecode import format_clock


class TextExporter(Exporter):
    format = "txt"
    suffix = ".txt"
    description = "plain transcript"
    option_names = ("timestamps", "speakers")

    def render(self, document: Document) -> str:
        lines = []
        for segment in document.segments:
            prefix = ""
            if self.options.get("timestamps", True):
                prefix += f"[{format_clock(segment.start)}] "
            name = document.speaker_name(segment.speaker)
            if self.options.get("speakers", True) and name:
                prefix += f"{name}: "
            lines.append(prefix + segment.content)
        if not document.segments:
            for key in ("description", "answer", "summary"):
                value = document.fields.get(key)
                if isinstance(value, str) and value.strip():
                    lines.append(value.strip())
        return "\n".join(lines) + ("\n" if lines else "")
