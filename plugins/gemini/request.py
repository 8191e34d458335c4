"""Building generateContent requests: the prompt, the generation config, and repair requests."""

from __future__ import annotations

import json
import re
from typing import Any, Mapping

from google.genai import types

from runpipe.errors import PipelineConfigError
from runpipe.model import Task, TimeRange
from runpipe.timecode import format_clock

from .response import Verdict
from .schema import response_json_schema
from .limits import MODEL_OUTPUT_CEILING, thinking_levels
from .settings import THINKING_TOKENS, GeminiSettings

#: Settings a task's ``generation`` mapping may hold.
GENERATION_KEYS = ("temperature", "top_p", "top_k", "seed", "max_output_tokens", "thinking", "thinking_budget")
#: Models that take a thinking budget and no thinking level: Gemini 1.x and 2.x. Gemini 3 and
#: later (and the ``-latest`` aliases, which point at them) take ``thinkingLevel``.
_BUDGET_MODELS = re.compile(r"^(models/)?gemini-[12](\.|-)")
#: How much of a broken answer a repair request quotes back (JSON-escaped, at most ~6 bytes a char).
REPAIR_ECHO_CHARS = 60_000
#: Request bytes besides media, prompt and schema: JSON framing plus a repair request's quoted answer.
REQUEST_HEADROOM_BYTES = 512 * 1024


def generation_settings(task: Task, settings: GeminiSettings) -> dict[str, Any]:
    """The task's generation settings over the backend's, checked for unknown keys."""
    unknown = sorted(set(task.generation) - set(GENERATION_KEYS))
    if unknown:
        raise PipelineConfigError(
            f"task {task.name}: unknown generation setting(s) {', '.join(unknown)} for backend gemini; "
            f"known: {', '.join(GENERATION_KEYS)}"
        )
    merged = {
        "temperature": settings.temperature,
        "max_output_tokens": settings.max_output_tokens,
        "thinking": settings.thinking,
        "thinking_budget": settings.thinking_budget,
    }
    merged.update(task.generation)
    if merged["thinking"] not in THINKING_TOKENS:
        raise PipelineConfigError(f"task {task.name}: thinking must be one of {', '.join(THINKING_TOKENS)}, got {merged['thinking']!r}")
    return merged


def takes_thinking_budget(model: str) -> bool:
    """True for models that are steered by a thinking budget rather than a thinking level."""
    return bool(_BUDGET_MODELS.match(model))


def thinking_tokens(generation: Mapping[str, Any]) -> int:
    """The tokens reserved for thinking: the explicit budget, else the level's."""
    budget = generation.get("thinking_budget")
    return int(budget) if budget is not None else THINKING_TOKENS[generation["thinking"]]


def check_thinking(model: str, level: str, where: str) -> None:
    """Refuse, before any request, a thinking level the model does not take (the API answers it
    with a 400 on every input)."""
    if takes_thinking_budget(model):
        return  # the level becomes a budget, which every such model takes
    levels = thinking_levels(model)
    if level not in levels:
        raise PipelineConfigError(
            f"{where}: {model} does not take thinking {level}; it takes {', '.join(levels)} (set thinking to one of them)"
        )


def thinking_config(model: str, generation: Mapping[str, Any]) -> types.ThinkingConfig:
    """``thinkingLevel`` for Gemini 3 models (a budget is only accepted there for backwards
    compatibility, and the API refuses both together); a budget for the models that need one."""
    if takes_thinking_budget(model):
        return types.ThinkingConfig(thinking_budget=thinking_tokens(generation))
    return types.ThinkingConfig(thinking_level=types.ThinkingLevel(generation["thinking"].upper()))


def generation_config(
    task: Task, generation: Mapping[str, Any], *, model: str, answer_tokens: int, cached_content: str | None = None,
) -> types.GenerateContentConfig:
    """The request's config: JSON output with the task's schema and the generation settings
    (with ``media_resolution`` when the media is a video, whose frames cost tokens). With
    ``cached_content`` the request reads the audio from that cache, which holds the system
    instruction too (the API refuses one in a request that uses a cache).

    Gemini counts thinking tokens against ``max_output_tokens``; so the request asks for the
    answer's budget *plus* the thinking reserve, and thinking cannot starve the answer.
    """
    thinking = thinking_tokens(generation)
    resolution = generation.get("media_resolution")
    return types.GenerateContentConfig(
        system_instruction=None if cached_content else task.system_instruction or None,
        cached_content=cached_content,
        response_mime_type="application/json",
        response_json_schema=response_json_schema(task.schema),
        temperature=generation.get("temperature"),
        top_p=generation.get("top_p"),
        top_k=generation.get("top_k"),
        seed=generation.get("seed"),
        max_output_tokens=min(answer_tokens + thinking, MODEL_OUTPUT_CEILING),
        thinking_config=thinking_config(model, generation),
        media_resolution=types.MediaResolution(f"MEDIA_RESOLUTION_{resolution.upper()}") if resolution else None,
        # No tools are offered, so the SDK's client-side function-calling loop has nothing to do.
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )


def enlarged_budget(answer_tokens: int, generation: Mapping[str, Any]) -> int:
    """The answer budget for a retry after a MAX_TOKENS cut: doubled, within the model's ceiling."""
    return min(answer_tokens * 2, MODEL_OUTPUT_CEILING - thinking_tokens(generation))


def prompt_text(task: Task, range_in_prompt: TimeRange | None, clip: TimeRange | None = None) -> str:
    """The task's prompt, plus the time range when the media itself could not be cut, or where
    the clip Gemini cut out of a video starts."""
    if clip is not None:
        return (
            f"{task.prompt}\n\nThe video is cut to the part from {format_clock(clip.start)}"
            + ("" if clip.end is None else f" to {format_clock(clip.end)}")
            + ". Give every timestamp relative to the start of that part (00:00 is where the part begins)."
        )
    if range_in_prompt is None:
        return task.prompt
    start = format_clock(range_in_prompt.start)
    stretch = f"from {start} to the end" if range_in_prompt.end is None else f"from {start} to {format_clock(range_in_prompt.end)}"
    return (
        f"{task.prompt}\n\nOnly consider the part of the media {stretch}; ignore everything before and after it. "
        "Give every timestamp relative to the start of the whole media, not to the start of that part."
    )


def first_turn(media: types.Part, prompt: str) -> list[types.Content]:
    # Media before text: Gemini's audio guide puts the file first for the best results.
    return [types.Content(role="user", parts=[media, types.Part(text=prompt)])]


def repair_turns(first: list[types.Content], broken_answer: str, verdict: Verdict) -> list[types.Content]:
    """The request for another attempt after ``verdict`` found ``broken_answer`` unusable.

    Broken JSON and schema violations are shown to the model with what was wrong, so it can
    correct them. A cut or a loop is not quoted back (it would invite the model to carry on);
    instead the prompt gains a note asking for an answer that stays within bounds.
    """
    if verdict.problem in ("invalid_json", "schema"):
        return [
            *first,
            types.Content(role="model", parts=[types.Part(text=broken_answer[:REPAIR_ECHO_CHARS])]),
            types.Content(role="user", parts=[types.Part(text=(
                f"That answer cannot be used: {verdict.detail}. Answer the original request again, from the audio, "
                "with only JSON that matches the response schema exactly."
            ))]),
        ]
    if verdict.problem in _CUT_NOTES:
        note = (
            "Note: a previous attempt at this request "
            + _CUT_NOTES[verdict.problem]
            + "Write each segment once, never repeat a phrase that is not repeated in the audio, and keep free-text fields short."
        )
        user = first[0]
        return [types.Content(role=user.role, parts=[*(user.parts or []), types.Part(text=note)]), *first[1:]]
    return first  # no answer and no reason given: ask again as it was


#: What a repair request says about an answer that was cut short, by problem.
_CUT_NOTES = {
    "max_tokens": "was cut off at the output limit. ",
    "repetition_loop": "got stuck repeating the same words. ",
    "recitation": "was stopped for quoting a known text at length. ",
}


def json_bytes(value: Any) -> int:
    """Bytes ``value`` takes in the request body (the SDK escapes non-ASCII as \\uXXXX)."""
    return len(json.dumps(value))


def request_bytes_besides_media(task: Task, prompt: str) -> int:
    """A bound on the request body size without the media part, for the inline-or-upload choice."""
    return (
        json_bytes(prompt)
        + json_bytes(task.system_instruction or "")
        + json_bytes(response_json_schema(task.schema))
        + REQUEST_HEADROOM_BYTES
    )


def inline_bytes(media_bytes: int) -> int:
    """Bytes ``media_bytes`` of media take inline: base64, 4 characters per 3 bytes."""
    return 4 * ((media_bytes + 2) // 3)
