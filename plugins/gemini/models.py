"""Which models the key can use: one ``models.list`` per backend, behind ``runpipe models`` and
the up-front check that a run's model exists (a retired or mistyped name fails before any
audio is sent, naming what the key can use instead)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from runpipe.errors import BackendUnavailable

from .client import GeminiClient

#: Models whose output is not a text answer (images, speech): they cannot answer runpipe's tasks.
_NOT_TEXT_MODELS = ("-image", "-tts", "imagen", "veo", "embedding", "-live")


@dataclass(frozen=True)
class ModelInfo:
    """One model the key can use for audio analysis, as models.list describes it."""

    name: str  # without the ``models/`` prefix, as a pipeline names it
    display_name: str | None
    input_token_limit: int | None
    output_token_limit: int | None

    def as_dict(self, default: str) -> dict:
        return {
            "name": self.name, "display_name": self.display_name, "input_token_limit": self.input_token_limit,
            "output_token_limit": self.output_token_limit, "default": self.name == default,
        }


class ModelCatalog:
    """The models the key can use, listed once (lazily) and shared by the backend's threads."""

    def __init__(self, client: GeminiClient):
        self._client = client
        self._lock = threading.Lock()
        self._models: tuple[ModelInfo, ...] | None = None

    def models(self) -> tuple[ModelInfo, ...]:
        """Models that answer generateContent with text, in the order the service lists them."""
        with self._lock:
            if self._models is None:
                client = self._client
                listed, _ = client.call(
                    "listing the models this key can use",
                    lambda: list(client.sdk.models.list(config={"page_size": 1000, "query_base": True})),
                )
                self._models = tuple(
                    ModelInfo(
                        name=(model.name or "").removeprefix("models/"), display_name=model.display_name,
                        input_token_limit=model.input_token_limit, output_token_limit=model.output_token_limit,
                    )
                    for model in listed
                    if "generateContent" in (model.supported_actions or [])
                    and not any(marker in (model.name or "") for marker in _NOT_TEXT_MODELS)
                )
            return self._models

    def require(self, model: str) -> None:
        """Fail in one line when ``model`` is not one the key can use for audio."""
        names = [m.name for m in self.models()]
        if model.removeprefix("models/") not in names:
            listed = ", ".join(names) or "none"
            raise BackendUnavailable(
                f"Gemini model {model!r} is not available to this API key (retired, misspelt, or not served for "
                f"generateContent); the key can use: {listed}. Choose one with -m/--model or the pipeline's model."
            )
