"""The ``html`` export format: one self-contained, offline page per input, plus a batch index."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import ClassVar, Mapping

import runpipe
from runpipe.interfaces import Exporter
from runpipe.model import AudioFile, Document, RunResult
from runpipe.options import option

from . import index, report
from .page import esc, fill, script_json, template


@dataclass(frozen=True)
class HtmlOptions:
    embed_audio: bool = option(True, "put the normalized audio into the page as a data URI (false: link to the audio file)")
    title: str | None = option(None, "the page's heading instead of the input's name (and the batch page's)")


class HtmlExporter(Exporter):
    """An interactive report: summary, speaker timeline, sound timeline (a description's events,
    moods marked on music), transcript, audio player and search."""

    format: ClassVar[str] = "html"
    suffix: ClassVar[str] = ".html"
    description: ClassVar[str] = "Self-contained interactive HTML report (transcript, timeline, audio, search)"
    Options = HtmlOptions
    settings: HtmlOptions

    def render(self, document: Document) -> str:
        duration = report.timeline_duration(document)
        title = self.settings.title or document.source.name
        return fill(
            template("report.html"),
            {
                "title": esc(title),
                "eyebrow": esc(f"runpipe · {document.task}"),
                "meta": report.header_meta(document, title),
                "player": player_html(document.audio, self.settings.embed_audio),
                "fields": report.fields_html(document),
                "timeline": report.timeline_html(document, duration),
                "sounds": report.sound_timeline_html(document, duration),
                "transcript": report.transcript_html(document, duration),
                "provenance": report.provenance_html(document, runpipe.__version__),
                "data": script_json(report.segment_data(document, duration)),
                "css": template("report.css"),
                "js": template("report.js"),
            },
        )

    def render_index(self, run: RunResult, links: Mapping[str, str]) -> str:
        return index.render(run, links, title=self.settings.title, version=runpipe.__version__)


def audio_url(audio: AudioFile, embed: bool) -> str | None:
    """A data URI of the normalized audio, or a ``file:`` URI to it; None without a local file."""
    if audio.path is None:
        return None
    if embed and audio.path.is_file():
        return f"data:{audio.mime_type};base64,{base64.b64encode(audio.path.read_bytes()).decode('ascii')}"
    return audio.path.resolve().as_uri()


def player_html(audio: AudioFile, embed: bool) -> str:
    url = audio_url(audio, embed)
    if url is None:
        return '<p class="no-audio">No local audio for this result, so there is no player.</p>'
    if not audio.path.is_file():
        return (f'<p class="no-audio">The normalized audio ({esc(str(audio.path))}) is gone, so there is no player; '
                "running the pipeline on the input again brings it back.</p>")
    return (
        f'<audio id="player" controls preload="metadata" src="{esc(url)}" aria-label="Audio of {esc(audio.source.name)}">'
        "Your browser cannot play this audio.</audio>"
    )
