"""JSON: the complete result with provenance. It is the source of truth that
``runpipe export`` re-renders in any other format without touching the audio."""

from __future__ import annotations

import json
from dataclasses import dataclass

from runpipe.interfaces import Exporter
from runpipe.model import Document
from runpipe.options import option
from runpipe.serialize import document_to_dict


@dataclass(frozen=True)
class JsonOptions:
    indent: int | None = option(2, "spaces per level of indentation (null: all on one line)", minimum=0)


class JsonExporter(Exporter):
    format = "json"
    suffix = ".json"
    description = "complete result with provenance (re-exportable)"
    Options = JsonOptions
    settings: JsonOptions

    def render(self, document: Document) -> str:
        return json.dumps(document_to_dict(document), indent=self.settings.indent, ensure_ascii=False) + "\n"
