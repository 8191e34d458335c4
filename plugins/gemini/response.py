"""Reading a generateContent answer and judging whether it is usable.

An answer is usable when it is JSON that validates against the task's schema. The ways it can
fail, in the order they are checked, are the :data:`~.errors.AnswerProblem` kinds: a repetition
loop (checked first because a loop also ends in a cut or broken JSON, and needs a different
remedy), a MAX_TOKENS cut, no answer at all (blocked), invalid JSON, schema violations.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import jsonschema
from google.genai import types

from runpipe.model import Usage

from .errors import AnswerProblem

#: A loop is a unit of at most this many characters ...
LOOP_MAX_UNIT = 300
#: ... repeated at least this many times back to back ...
LOOP_MIN_REPEATS = 10
#: ... over at least this many characters (so "......" or "ha ha ha" in real speech do not count).
LOOP_MIN_CHARS = 200
_JSON_CLOSERS = ' \t\r\n"}],'
#: Finish reasons that mean a filter stopped the answer: asking again identically cannot help.
#: (RECITATION is not one: it is retried, then a shorter window is tried, like a MAX_TOKENS cut.)
SAFETY_STOPS = frozenset({"SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT", "MODEL_ARMOR"})


@dataclass(frozen=True)
class Reply:
    """The parts of one generateContent answer runpipe uses."""

    text: str
    finish_reason: str | None
    usage: Usage
    model_version: str | None
    response_id: str | None
    block_reason: str | None = None
    cached_tokens: int | None = None  # of the prompt's tokens, those read from a context cache


@dataclass(frozen=True)
class Verdict:
    """Whether a reply is usable: ``data`` when it is, else the ``problem`` and a ``detail`` sentence."""

    data: Any = None
    problem: AnswerProblem | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.problem is None


def read_reply(response: types.GenerateContentResponse) -> Reply:
    """Extract text (thoughts excluded), finish reason, usage and ids from an SDK response."""
    candidate = response.candidates[0] if response.candidates else None
    parts = (candidate.content.parts if candidate and candidate.content else None) or []
    text = "".join(part.text for part in parts if part.text and not part.thought)
    finish = candidate.finish_reason if candidate else None
    feedback = response.prompt_feedback
    return Reply(
        text=text,
        finish_reason=getattr(finish, "value", finish),
        usage=_usage(response.usage_metadata),
        model_version=response.model_version,
        response_id=response.response_id,
        block_reason=str(getattr(feedback.block_reason, "value", feedback.block_reason)) if feedback and feedback.block_reason else None,
        cached_tokens=response.usage_metadata.cached_content_token_count if response.usage_metadata else None,
    )


def _usage(metadata: types.GenerateContentResponseUsageMetadata | None) -> Usage:
    if metadata is None:
        return Usage(requests=1)
    by_modality = {
        getattr(d.modality, "value", d.modality): d.token_count or 0 for d in metadata.prompt_tokens_details or []
    }
    return Usage(
        prompt_tokens=metadata.prompt_token_count,
        audio_tokens=by_modality.get("AUDIO"),
        text_tokens=by_modality.get("TEXT"),
        output_tokens=metadata.candidates_token_count,
        thinking_tokens=metadata.thoughts_token_count,
        requests=1,
    )


def judge(reply: Reply, validator: jsonschema.protocols.Validator) -> Verdict:
    """Decide whether ``reply`` answers the task (see the module docstring for the order)."""
    loop = find_repetition_loop(reply.text)
    if loop is not None:
        return Verdict(problem="repetition_loop", detail=f"the answer fell into a repetition loop, repeating {loop[:60]!r} over and over")
    if reply.finish_reason == "MAX_TOKENS":
        return Verdict(problem="max_tokens", detail=f"the answer was cut off at the output token limit after {len(reply.text)} characters")
    if reply.block_reason:
        return Verdict(problem="blocked", detail=(
            f"Gemini blocked the prompt (blockReason {reply.block_reason}) before answering; the same request would be "
            "blocked again. Check the audio and the prompt, or analyse another part of the media (time_range)"
        ))
    if reply.finish_reason in SAFETY_STOPS and not reply.text.strip():
        return Verdict(problem="blocked", detail=(
            f"Gemini stopped the answer with finish reason {reply.finish_reason} (a safety filter); the same request would "
            "be stopped again. Check the audio and the prompt, or analyse another part of the media (time_range)"
        ))
    if reply.finish_reason == "RECITATION":
        return Verdict(problem="recitation", detail="Gemini stopped the answer for reciting training data (finish reason RECITATION)")
    if not reply.text.strip():
        why = reply.finish_reason or "no reason given"
        return Verdict(problem="no_answer", detail=f"Gemini gave no answer (finish reason / block reason: {why})")
    try:
        data = json.loads(reply.text)
    except ValueError as error:
        return Verdict(problem="invalid_json", detail=f"the answer is not valid JSON ({error})")
    loop = next(filter(None, map(find_repetition_loop, _strings(data))), None)
    if loop is not None:
        return Verdict(problem="repetition_loop", detail=f"a field of the answer repeats {loop[:60]!r} over and over")
    violations = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if violations:
        listed = "; ".join(f"{_where(v)}: {v.message}" for v in violations[:5])
        more = f" (and {len(violations) - 5} more)" if len(violations) > 5 else ""
        return Verdict(problem="schema", detail=f"the answer does not match the schema: {listed}{more}")
    return Verdict(data=with_nulls(data, validator.schema))


def with_nulls(value: Any, schema: Mapping[str, Any]) -> Any:
    """``value`` with every optional property it leaves out set to null, where the schema allows
    null (e.g. ``translation``, which the documentation gives only for non-English segments), so
    that every segment has the same keys."""
    if isinstance(value, Mapping) and isinstance(schema.get("properties"), Mapping):
        filled = {key: with_nulls(item, schema["properties"].get(key, {})) for key, item in value.items()}
        for key, sub in schema["properties"].items():
            if key not in filled and _allows_null(sub):
                filled[key] = None
        return filled
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [with_nulls(item, schema["items"]) for item in value]
    return value


def _allows_null(schema: Any) -> bool:
    kind = schema.get("type") if isinstance(schema, Mapping) else None
    return kind == "null" or (isinstance(kind, list) and "null" in kind)


def _where(error: jsonschema.ValidationError) -> str:
    return "/".join(str(p) for p in error.absolute_path) or "(top level)"


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def find_repetition_loop(text: str) -> str | None:
    """The repeated unit if ``text`` ends in a loop (one unit over and over), else None.

    A loop runs until the output limit, so it is at the end of the text, possibly followed by
    JSON punctuation when the model closed its strings. The periodic run is measured backwards
    from the end: character i equals character i - period for the whole run.
    """
    tail = text.rstrip(_JSON_CLOSERS)
    for period in range(1, min(LOOP_MAX_UNIT, len(tail) // LOOP_MIN_REPEATS) + 1):
        run = period
        while run < len(tail) and tail[-run - 1] == tail[-run - 1 + period]:
            run += 1
        if run >= max(LOOP_MIN_CHARS, LOOP_MIN_REPEATS * period):
            unit = tail[-period:]
            if unit.strip():
                return unit
    return None


def schema_validator(schema: Mapping[str, Any]) -> jsonschema.protocols.Validator:
    """A validator for ``schema`` using the draft it declares (2020-12 when it declares none)."""
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    cls.check_schema(schema)
    return cls(schema)
