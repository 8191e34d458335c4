"""JSON: the complete result with provenance. It is the source of truth that
``runpipe export`` re-renders in any other format without touching the audio."""

from __future__ import annotations

import json

from runpipe.interfaces import Exporter
from runpipe.model import Document
from runpipe.serialize import document_to_dict


class JsonExporter(Exporter):
    format = "json"
    suffix = ".json"
    description = "complete result with provenance (re-exportable)"
    option_names = ("indent",)

    def render(self, document: Document) -> str:
        return json.dumps(document_to_dict(document), indent=self.options.get("indent", 2), ensure_ascii=False) + "\n"
