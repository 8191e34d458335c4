"""Remembering uploaded files across runs, so a rerun does not upload the same audio again.

A small SQLite table under ``runpipe.paths.cache_dir("gemini")`` maps (endpoint, content key) to
the Files API name and its expiry. It holds no key and no audio: only names Google gave us. A
remembered file is always checked with ``files.get`` before use, so a stale row costs one request.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from runpipe.paths import cache_dir

_SCHEMA = """
CREATE TABLE IF NOT EXISTS uploads (
    endpoint TEXT NOT NULL,
    content_key TEXT NOT NULL,
    name TEXT NOT NULL,
    uri TEXT NOT NULL,
    mime_type TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (endpoint, content_key)
)
"""


@dataclass(frozen=True)
class RememberedUpload:
    name: str
    uri: str
    mime_type: str
    expires_at: float  # seconds since the epoch


class UploadCache:
    """The persistent content key -> uploaded file table. Safe to use from several threads."""

    def __init__(self, path: Path | None = None):
        self.path = path or cache_dir("gemini") / "uploads.sqlite"
        with self._connect() as db:
            db.execute(_SCHEMA)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # One short connection per operation: sqlite connections must not cross threads.
        db = sqlite3.connect(self.path, timeout=30)
        try:
            with db:  # commits, or rolls back on error
                yield db
        finally:
            db.close()

    def lookup(self, endpoint: str, content_key: str, *, valid_for: float) -> RememberedUpload | None:
        """The remembered upload if it stays valid for at least ``valid_for`` more seconds."""
        with self._connect() as db:
            row = db.execute(
                "SELECT name, uri, mime_type, expires_at FROM uploads WHERE endpoint = ? AND content_key = ?",
                (endpoint, content_key),
            ).fetchone()
        if row is None or row[3] < time.time() + valid_for:
            return None
        return RememberedUpload(*row)

    def remember(self, endpoint: str, content_key: str, upload: RememberedUpload) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO uploads VALUES (?, ?, ?, ?, ?, ?)",
                (endpoint, content_key, upload.name, upload.uri, upload.mime_type, upload.expires_at),
            )

    def forget(self, endpoint: str, name: str) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM uploads WHERE endpoint = ? AND name = ?", (endpoint, name))
