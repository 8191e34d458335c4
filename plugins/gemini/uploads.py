"""Files API uploads: upload once, wait until ACTIVE, reuse while valid, delete when done."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from google.genai import types

from runpipe.errors import BackendError, MediaError

from .client import GeminiClient
from .upload_cache import RememberedUpload, UploadCache

log = logging.getLogger("runpipe.plugins.gemini")

#: The Files API takes files up to 2 GB.
MAX_UPLOAD_BYTES = 2 * 1000**3
#: A remembered file is reused only if it stays valid this much longer (files live 48 h).
REUSE_MARGIN_SECONDS = 3600.0
#: Expiry assumed when the service does not say (a little under its 48 hours).
ASSUMED_LIFETIME_SECONDS = 47 * 3600.0


class Uploads:
    """The uploaded files of one backend instance. Thread-safe: one upload per content key."""

    def __init__(self, client: GeminiClient, cache: UploadCache):
        self._client = client
        self._cache = cache
        self._endpoint = client.settings.endpoint
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._used: dict[str, None] = {}  # names this instance uploaded or reused: an ordered set

    def active_file(self, path: Path, mime_type: str, content_key: str) -> types.File:
        """An ACTIVE uploaded file with ``path``'s content: a remembered one if still valid, else new."""
        with self._lock_for(content_key):
            remembered = self._cache.lookup(self._endpoint, content_key, valid_for=REUSE_MARGIN_SECONDS)
            file = self._still_usable(remembered) if remembered else None
            if file is None:
                file = self._wait_until_active(self._upload(path, mime_type, content_key))
                expires = file.expiration_time.timestamp() if file.expiration_time else time.time() + ASSUMED_LIFETIME_SECONDS
                self._cache.remember(self._endpoint, content_key, RememberedUpload(file.name, file.uri, mime_type, expires))
            self._used[file.name] = None
            return file

    def _lock_for(self, content_key: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(content_key, threading.Lock())

    def _still_usable(self, remembered: RememberedUpload) -> types.File | None:
        """The remembered file if the service still has it and it can become ACTIVE, else None."""
        try:
            file, _ = self._client.call(f"checking uploaded file {remembered.name}", lambda: self._client.sdk.files.get(name=remembered.name))
        except BackendError as error:
            log.info("uploaded file %s cannot be reused (%s); uploading again", remembered.name, error)
            self._cache.forget(self._endpoint, remembered.name)
            return None
        if file.state == types.FileState.FAILED:
            self._cache.forget(self._endpoint, remembered.name)
            return None
        return self._wait_until_active(file)

    def _upload(self, path: Path, mime_type: str, content_key: str) -> types.File:
        size = path.stat().st_size
        if size > MAX_UPLOAD_BYTES:
            # Checked before any request. The file is runpipe's normalized audio (or a window of it),
            # named by hash, so the message speaks of the audio; the engine names the input.
            raise MediaError(
                f"the audio to upload is {size / 1000**3:.1f} GB ({size} bytes); the Gemini Files API takes at most "
                f"{MAX_UPLOAD_BYTES / 1000**3:g} GB per file. Use a compressed normalize.format (ogg, mp3) or a shorter "
                "stages.analyze.chunking.max_seconds"
            )

        def upload() -> types.File:
            # A file object, not a path: the SDK would put the file name in a header, which
            # breaks on names that are not ASCII. Opened per attempt so a retry starts at byte 0.
            with path.open("rb") as handle:
                return self._client.sdk.files.upload(
                    file=handle,
                    config=types.UploadFileConfig(mime_type=mime_type, display_name=f"runpipe-{content_key[:40]}"),
                )

        file, _ = self._client.call(f"uploading {path.name} ({size} bytes)", upload)
        log.info("uploaded %s as %s", path.name, file.name)
        return file

    def _wait_until_active(self, file: types.File) -> types.File:
        settings = self._client.settings
        deadline = time.monotonic() + settings.file_active_timeout
        while file.state == types.FileState.PROCESSING:
            if time.monotonic() >= deadline:
                raise BackendError(
                    f"Gemini was still processing the uploaded audio {file.name} after {settings.file_active_timeout:.0f} s "
                    "(file_active_timeout); run again later to reuse it",
                    retryable=True,
                )
            time.sleep(settings.file_poll_interval)
            file, _ = self._client.call(f"waiting for uploaded file {file.name}", lambda: self._client.sdk.files.get(name=file.name))
        if file.state == types.FileState.FAILED:
            self._cache.forget(self._endpoint, file.name)
            reason = file.error.message if file.error and file.error.message else "no reason given"
            raise BackendError(
                f"Gemini could not process the uploaded audio {file.name} (state FAILED: {reason}); "
                "the audio may be corrupt or in a format Gemini does not take"
            )
        return file

    def delete_used(self) -> None:
        """Delete every file this instance uploaded or reused, and forget them. Never raises."""
        for name in list(self._used):
            try:
                self._client.call(f"deleting uploaded file {name}", lambda: self._client.sdk.files.delete(name=name))
            except BackendError as error:  # already gone, or the service is down: it expires in 48 h anyway
                log.warning("could not delete uploaded file %s: %s", name, error)
            self._cache.forget(self._endpoint, name)
            del self._used[name]
