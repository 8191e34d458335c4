"""Building generateContent requests: the prompt, the generation config, and repair requests."""

from __future__ import annotations

import json
from typing import Any, Mapping

from google.genai import types

from runpipe.errors import PipelineConfigError
from runpipe.model import Task, TimeRange
from runpipe.timecode import format_clock

from .response import Verdict
from .schema import response_json_schema
from .settings import MODEL_OUTPUT_CEILING, GeminiSettings

#: Settings a task's ``generation`` mapping may hold.
GENERATION_KEYS = ("temperature", "top_p", "top_k", "seed", "max_output_tokens", "thinking_budget")
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
        "thinking_budget": settings.thinking_budget,
    }
    merged.update(task.generation)
    return merged


def generation_config(task: Task, generation: Mapping[str, Any], *, answer_tokens: int) -> types.GenerateContentConfig:
    """The request's config: JSON output with the task's schema and the generation settings.

    Gemini counts thinking tokens against ``max_output_tokens``; so the request asks for the
    answer's budget *plus* the thinking budget, and thinking cannot starve the answer.
    """
    thinking = int(generation["thinking_budget"])
    return types.GenerateContentConfig(
        system_instruction=task.system_instruction or None,
        response_mime_type="application/json",
        response_json_schema=response_json_schema(task.schema),
        temperature=generation.get("temperature"),
        top_p=generation.get("top_p"),
        top_k=generation.get("top_k"),
        seed=generation.get("seed"),
        max_output_tokens=min(answer_tokens + thinking, MODEL_OUTPUT_CEILING),
        thinking_config=types.ThinkingConfig(thinking_budget=thinking),
        # No tools are offered, so the SDK's client-side function-calling loop has nothing to do.
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )


def enlarged_budget(answer_tokens: int, generation: Mapping[str, Any]) -> int:
    """The answer budget for a retry after a MAX_TOKENS cut: doubled, within the model's ceiling."""
    return min(answer_tokens * 2, MODEL_OUTPUT_CEILING - int(generation["thinking_budget"]))


def prompt_text(task: Task, range_in_prompt: TimeRange | None) -> str:
    """The task's prompt, plus the time range when the media itself could not be cut."""
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
    if verdict.problem in ("max_tokens", "repetition_loop"):
        note = (
            "Note: a previous attempt at this request "
            + ("was cut off at the output limit. " if verdict.problem == "max_tokens" else "got stuck repeating the same words. ")
            + "Write each segment once, never repeat a phrase that is not repeated in the audio, and keep free-text fields short."
        )
        user = first[0]
        return [types.Content(role=user.role, parts=[*(user.parts or []), types.Part(text=note)]), *first[1:]]
    return first  # no answer at all (e.g. blocked): ask again as it was


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
