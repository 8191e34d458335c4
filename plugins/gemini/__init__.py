"""The Gemini analysis backend (``backend: gemini``), registered like any third-party plugin.

Options (under ``stages.analyze.backends.gemini`` in a pipeline; the per-task subset under a task's ``options``):

``api_key_env``
    Read the key only from this variable. Default: ``GEMINI_API_KEY``, then ``GOOGLE_API_KEY``.
``base_url`` / ``api_version`` (``v1beta``)
    Endpoint and API version. Without ``base_url`` the SDK's ``GOOGLE_GEMINI_BASE_URL`` keeps
    working, else Google's endpoint. ``v1beta`` is pinned (see ``settings.DEFAULT_API_VERSION``).
``model``
    Default ``gemini-3.8-flash`` (``settings.DEFAULT_MODEL``); a task's ``model`` (the pipeline's,
    or ``-m``) wins. Checked up front against models.list.
``max_output_tokens`` (32768) / ``thinking`` (low) / ``thinking_budget`` (unset)
    The answer's budget, and how much the model thinks: ``minimal``, ``low``, ``medium`` or
    ``high``, sent as ``thinkingLevel`` to Gemini 3 models and as a budget (512, 2,048, 8,192 or
    16,384 tokens, or ``thinking_budget`` exactly) to Gemini 2.x models, which take only a budget.
    Gemini 3.8/3.7 Flash take only low, medium and high (``limits.thinking_levels``): minimal
    with them fails up front. Gemini counts thinking against the output limit, so requests ask
    for the answer's budget plus that reserve. A MAX_TOKENS cut is retried with the answer budget doubled (up to 65,536).
``media_resolution`` (low)
    Resolution of video frames (YouTube URLs): low, medium or high. Audio costs the same at any.
``temperature``
    Default: the model's own (Gemini 3 is tuned for 1.0 and tends to loop when it is lowered).
``max_retries`` (5) / ``retry_base_delay`` (1 s) / ``retry_max_delay`` (60 s)
    Retries of 408/429/5xx and connection failures: exponential backoff with jitter, never sooner
    than Retry-After or RetryInfo asks; a wait longer than ``retry_max_delay`` gives up at once.
``repair_attempts`` (2)
    Extra requests after an answer that is not JSON, violates the schema, was cut at MAX_TOKENS or
    fell into a repetition loop. Then the task fails with the raw answer kept in the error.
``concurrency`` (16)
    Requests in flight at once for this backend (the run's ``--concurrency`` bounds them too);
    a 429 pauses all of them.
``requests_per_minute`` / ``tokens_per_minute`` (unset)
    Client-side quotas: requests, and input tokens (audio at 32 per second plus text), spent over
    a sliding minute, so a free or low tier is not hit with 429 storms.
``inline_limit_bytes`` (100,000,000; 20,000,000 in batch mode)
    Audio goes inline while the whole request (base64 media, prompt, schema) stays below this;
    above it, it is uploaded with the Files API.
``delete_uploads`` (true)
    Delete uploaded files when the engine closes. Trade-off: with true, a later run uploads again
    (only an interrupted run's files are reused); with false, files are reused by every run for
    up to 48 hours, when Google deletes them.
``request_timeout`` (600 s), ``file_poll_interval`` (2 s), ``file_active_timeout`` (600 s)
    Per-request timeout; how often and how long to wait for an upload to become ACTIVE.
``batch`` (false)
    Send analysis through Gemini's batch mode: half the price, answered within 24 hours. Each
    request is built as without ``batch`` (inline audio or an uploaded file) and joins a batch job
    with the requests of the other inputs; repairs of unusable answers are asked directly.
    Resumable: the job is remembered in the run store, so a rerun after a crash or a timeout
    collects it instead of submitting again. Uploaded files are kept while a job is unfinished.
``batch_poll_interval`` (30 s) / ``batch_max_wait`` (48 h)
    How often to ask whether a job is done, and how long to wait before failing its inputs as
    retryable (run again to collect the same job).
``batch_settle`` (1 s) / ``batch_max_requests`` (256)
    A job is submitted once no request joined it for ``batch_settle`` seconds, or when it holds
    ``batch_max_requests`` requests or would exceed 20 MB (the job is one request, and batch
    requests keep the 20 MB limit). Inline audio fills that fast: with long inputs, lower
    ``inline_limit_bytes`` so that audio is uploaded and a job holds only file references.
``transcribe_timeline`` (true) / ``transcribe_model`` (``gemini-3.5-transcribe``)
    For tasks whose answer has transcript segments, take segment times, words, speakers and
    languages from the transcription model (a second request, always direct, of the same audio;
    pieces of at most 30 minutes) and lay the general model's answer on them. A key that cannot
    use it keeps the general model's times, and the result's notes say why.
``retime_moments`` (true)
    Move the MM:SS moments answers to questions cite (``runpipe ask``, a task's ``questions``)
    onto the speech heard in the audio with the re-timing step's aligner (needs runpipe[local]);
    false, or without the offline models: the model's times, marked approximate.

``runpipe schema gemini`` prints every option with its type, default and range.
"""

from runpipe.hookspecs import hookimpl

from .backend import GeminiBackend

__all__ = ["GeminiBackend", "runpipe_register_backends"]


@hookimpl
def runpipe_register_backends(register) -> None:
    register(GeminiBackend)
