"""Built-in named prompts. Each pairs an instruction with the response schema it asks for."""

from __future__ import annotations

from importlib import resources

from runpipe.hookspecs import hookimpl
from runpipe.interfaces import Prompt

SYSTEM = "You are a meticulous audio analyst. Report only what can be heard; never invent speech, names or events."

_PROMPTS = (
    ("transcript", "transcript", "Summary plus speaker, timestamp, language, translation and emotion per segment (the Gemini docs' structured transcription)."),
    ("describe", "description", "Describe a clip, speech and non-speech sound, and answer a question about it."),
    ("translate", "translation", "Verbatim transcript with an English translation of every segment."),
    ("meeting", "meeting", "Meeting notes: summary, decisions and action items tied to moments, plus the transcript."),
    ("ask", "answers", "Free-form answers to a task's questions, each citing MM:SS moments (Gemini; one upload, one cache)."),
)


def _text(name: str) -> str:
    return resources.files("runpipe.plugins").joinpath("prompt_texts", f"{name}.md").read_text(encoding="utf-8").strip()


@hookimpl
def runpipe_register_prompts(register):
    for name, schema, description in _PROMPTS:
        register(Prompt(name=name, text=_text(name), schema=schema, system_instruction=SYSTEM, description=description))
