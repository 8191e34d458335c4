"""Gemini's documented request limits and token rates: one place for the backend, ``runpipe
estimate`` and FakeGemini, so that a change on Google's side is one edit here."""

from __future__ import annotations

#: The whole generateContent request body (base64 media, prompt and schema included). Google
#: raised it from 20 MB to 100 MB in January 2026 (https://blog.google/innovation-and-ai/technology/developers-tools/gemini-api-new-file-limits,
#: https://ai.google.dev/gemini-api/docs/file-input-methods); above it, media goes through the Files API.
INLINE_LIMIT_BYTES = 100_000_000
#: A batch job travels as one request body, and batch requests kept the old 20 MB limit.
BATCH_REQUEST_LIMIT_BYTES = 20_000_000
#: Audio costs 32 tokens a second (Gemini's audio documentation).
AUDIO_TOKENS_PER_SECOND = 32
#: Video costs about 300 tokens a second at the default media resolution (frames at 1 fps plus
#: the sound track), which is how a countTokens total becomes a length.
VIDEO_TOKENS_PER_SECOND_DEFAULT = 300
#: Longest output of Gemini 2.5/3 models, thinking included.
MODEL_OUTPUT_CEILING = 65536
#: Context caching needs at least this many input tokens (the caching page's table gives 4,096 for
#: Gemini 3.8, 3.7, 3.6 and 3.5 Flash and 3.1 Pro, 2,048 for the 2.5 models:
#: https://ai.google.dev/gemini-api/docs/caching). The larger figure is used
#: for every model: a cache below a model's minimum is refused, and a cache is only worth it for
#: long audio anyway (4,096 tokens is about two minutes).
CACHE_MIN_TOKENS = 4096
#: Thinking levels a Gemini 3 model takes, where Google documents fewer than all four: Gemini 3.8
#: and 3.7 Flash take LOW, MEDIUM and HIGH (default MEDIUM) and refuse MINIMAL ("Developer's guide
#: to Gemini 3.8 Flash", https://docs.cloud.google.com/gemini-enterprise-agent-platform/models/guides/gemini-3-8-flash);
#: ``gemini-flash-latest`` points at 3.8 Flash. 3.5/3.6 Flash and the Flash-Lite models take all four.
THINKING_LEVELS = ("minimal", "low", "medium", "high")
NARROWER_THINKING_LEVELS = {
    "gemini-3.8-flash": ("low", "medium", "high"),
    "gemini-3.7-flash": ("low", "medium", "high"),
    "gemini-flash-latest": ("low", "medium", "high"),
}


def thinking_levels(model: str) -> tuple[str, ...]:
    """The thinking levels ``model`` takes (lower case)."""
    return NARROWER_THINKING_LEVELS.get(model.removeprefix("models/"), THINKING_LEVELS)
