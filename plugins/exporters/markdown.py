"""Markdown: front matter, summary, the task's other findings, then the speaker-labelled
transcript with timestamps (one paragraph per speaker turn)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runpipe.interfaces import Exporter
from runpipe.model import AnswerItem, Document
from runpipe.options import option
from runpipe.plugins.feelings import event_feelings, mood_phrase
from runpipe.timecode import format_clock


def _yaml_scalar(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)


def _list_section(title: str, items: tuple[AnswerItem, ...], document: Document) -> list[str]:
    lines = [f"## {title}", ""]
    for item in items:
        if item.question is not None:  # an answer to one of a task's questions, with its moments
            lines += [f"**{item.question}**", "", item.text.strip(), ""]
            lines += [f"- [{m.timestamp}] {m.text}" for m in item.moments] + ([""] if item.moments else [])
            continue
        extras = []
        if item.owner:
            extras.append(f"owner: {document.speaker_name(item.owner)}")
        elif item.speaker:
            extras.append(document.speaker_name(item.speaker) or "")
        if item.due:
            extras.append(f"due: {item.due}")
        if item.kind and item.kind != item.text:
            extras.insert(0, item.kind)
        extras += [f"{label}: {value}" for label, value in event_feelings(item.feelings)]
        stamp = f"[{item.timestamp}" + (f"–{item.end_timestamp}" if item.end_timestamp else "") + "] " if item.timestamp else ""
        lines.append(f"- {stamp}{item.text}" + (f" ({', '.join(e for e in extras if e)})" if extras else ""))
    if not items:
        lines.append("_None._")
    return lines + [""]


@dataclass(frozen=True)
class MarkdownOptions:
    timestamps: bool = option(True, "mark each speaker turn (and each further segment) with its start, [MM:SS]")
    translations: bool = option(True, "quote a segment's translation under it, where it differs from what was said")


class MarkdownExporter(Exporter):
    format = "md"
    suffix = ".md"
    description = "summary, findings and speaker-labelled transcript"
    Options = MarkdownOptions
    settings: MarkdownOptions

    def render(self, document: Document) -> str:
        show_time = self.settings.timestamps
        show_translation = self.settings.translations
        title = document.source.stem
        out = [
            "---",
            f"title: {_yaml_scalar(title)}",
            f"source: {_yaml_scalar(document.source.uri)}",
            f"task: {_yaml_scalar(document.task)}",
            f"backend: {_yaml_scalar(document.backend)}",
            f"model: {_yaml_scalar(document.model)}",
        ]
        if document.audio.duration is not None:
            out.append(f"duration: {_yaml_scalar(format_clock(document.audio.duration))}")
        if document.speakers:
            out.append("speakers: [" + ", ".join(_yaml_scalar(s.display) for s in document.speakers) + "]")
        out += ["---", "", f"# {title}", ""]
        if document.summary:
            out += ["## Summary", "", document.summary.strip(), ""]
        overall_mood = mood_phrase(document.mood)
        if overall_mood:
            out += [f"**Overall mood:** {overall_mood}", ""]
        for field in document.answer:
            if field.name in ("summary", "mood", "mood_detail"):
                continue
            heading = field.name.replace("_", " ").capitalize()
            if field.items is not None:
                out += _list_section(heading, field.items, document)
            elif field.text and field.text.strip():
                out += [f"## {heading}", "", field.text.strip(), ""]
        if document.segments:
            out += ["## Transcript", ""]
            turn_speaker: object = object()
            for segment in document.segments:
                name = document.speaker_name(segment.speaker)
                stamp = f"[{format_clock(segment.start)}] " if show_time else ""
                lang = f" _({segment.language_code})_" if segment.language_code and segment.language_code != "en" else ""
                if segment.speaker != turn_speaker:
                    out += [f"**{name or 'Unknown'}** {stamp}".rstrip(), ""]
                    turn_speaker = segment.speaker
                elif show_time:
                    out.append(stamp.rstrip())
                out.append(segment.content + lang)
                if show_translation and segment.translation and segment.translation.strip() != segment.content.strip():
                    out.append(f"> {segment.translation}")
                out.append("")
        if document.notes:
            out += ["---", ""] + [f"- _{note}_" for note in document.notes] + [""]
        return "\n".join(out).rstrip() + "\n"
