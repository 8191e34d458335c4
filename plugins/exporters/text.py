"""Plain text: the transcript, optionally with timestamps and speaker names."""

from __future__ import annotations

from dataclasses import dataclass

from runpipe.interfaces import Exporter
from runpipe.options import option
from runpipe.model import Document
from runpipe.timecode import format_clock


@dataclass(frozen=True)
class TextOptions:
    timestamps: bool = option(True, "start each line with the segment's start time, [MM:SS]")
    speakers: bool = option(True, "name the speaker after the time")


class TextExporter(Exporter):
    format = "txt"
    suffix = ".txt"
    description = "plain transcript"
    Options = TextOptions
    settings: TextOptions

    def render(self, document: Document) -> str:
        lines = []
        for segment in document.segments:
            prefix = ""
            if self.settings.timestamps:
                prefix += f"[{format_clock(segment.start)}] "
            name = document.speaker_name(segment.speaker)
            if self.settings.speakers and name:
                prefix += f"{name}: "
            lines.append(prefix + segment.content)
        if not document.segments:
            for name in ("description", "answer", "summary"):
                text = document.text(name)
                if text and text.strip():
                    lines.append(text.strip())
        return "\n".join(lines) + ("\n" if lines else "")
