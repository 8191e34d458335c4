"""The run store: one SQLite file holding stage results under content-addressed keys and a
record of every run, so a rerun after a crash, Ctrl-C or kill -9 continues where it stopped.

SQLite commits are atomic and survive a killed process; WAL mode lets several threads of one
run read while one writes. Schema changes are an ordered list of migrations (like llm's).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterable, Mapping

from runpipe.errors import StateError

log = logging.getLogger("runpipe.store")

MIGRATIONS = (
    """
    CREATE TABLE cache (
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        created REAL NOT NULL,
        PRIMARY KEY (kind, key)
    );
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        pipeline TEXT NOT NULL,
        started REAL NOT NULL,
        finished REAL,
        status TEXT NOT NULL
    );
    CREATE TABLE run_inputs (
        run_id TEXT NOT NULL REFERENCES runs(id),
        uri TEXT NOT NULL,
        status TEXT NOT NULL,
        stage TEXT,
        plugin TEXT,
        error TEXT,
        timings TEXT NOT NULL,
        cached TEXT NOT NULL,
        tokens INTEGER,
        outputs TEXT NOT NULL,
        recorded REAL NOT NULL,
        PRIMARY KEY (run_id, uri)
    );
    """,
    # the process that runs a run: a run whose process is gone was interrupted (Ctrl-C, kill -9)
    "ALTER TABLE runs ADD COLUMN pid INTEGER;",
    # how many inputs ingest found: an interrupted run's unstarted inputs have no record of their own
    "ALTER TABLE runs ADD COLUMN total INTEGER;",
)


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def cache_key(*parts: Any) -> str:
    """A stable sha256 over JSON-able parts (media hash, stage configuration, plugin versions)."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


#: What sqlite's terse errors at open mean for the user.
_HINTS = {
    "disk I/O error": "is the disk full?",
    "database or disk is full": "the disk is full",
    "unable to open database file": "is its folder writable?",
    "attempt to write a readonly database": "the file or its folder is read-only",
    "database is locked": "another runpipe is holding it",
}


class RunStore:
    """Opening it never ends in a traceback: a store that is not a database (damaged, or some
    other file) is set aside beside itself and a new one made; a store that cannot be opened
    (full disk, no permission, a folder in the way) raises :class:`StateError` saying so."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(f"cannot create the run store's folder {path.parent}: {exc.strerror or exc}") from None
        try:
            self._db = self._open()
        except sqlite3.OperationalError as exc:  # the file system's fault, not the store's
            raise StateError(self._cannot_open(exc)) from None
        except sqlite3.DatabaseError as exc:  # "file is not a database", "disk image is malformed"
            aside = self._set_aside()
            log.warning("run store %s is damaged (%s); moved it to %s and started a new one "
                        "(earlier stored results are not reused)", path, exc, aside.name)
            try:
                self._db = self._open()
            except sqlite3.Error as again:
                raise StateError(self._cannot_open(again)) from None

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._migrate(db)
        except BaseException:
            db.close()
            raise
        return db

    def _cannot_open(self, exc: sqlite3.Error) -> str:
        hint = _HINTS.get(str(exc))
        return (f"cannot use the run store {self.path}: {exc}{f' ({hint})' if hint else ''}; "
                "make room or fix its folder, or point RUNPIPE_USER_PATH at another folder")

    def _set_aside(self) -> Path:
        """Rename the damaged store (and its WAL files) out of the way; keep it for a post-mortem."""
        aside = self.path.with_name(f"{self.path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        for suffix in ("", "-wal", "-shm"):
            try:
                os.replace(f"{self.path}{suffix}", f"{aside}{suffix}")
            except FileNotFoundError:  # no WAL files, or another process moved it first
                pass
            except OSError as exc:
                raise StateError(f"run store {self.path} is damaged and cannot be moved aside ({exc.strerror or exc}); "
                                 "delete it, or point RUNPIPE_USER_PATH at another folder") from None
        return aside

    def _migrate(self, db: sqlite3.Connection) -> None:
        with self._lock:
            current = db.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(MIGRATIONS[current:], start=current + 1):
                db.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- stage results --------------------------------------------------------------

    def get(self, kind: str, key: str) -> Any | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM cache WHERE kind = ? AND key = ?", (kind, key)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, kind: str, key: str, value: Any) -> None:
        blob = json.dumps(value, default=str)
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO cache (kind, key, value, created) VALUES (?, ?, ?, ?)",
                (kind, key, blob, time.time()),
            )

    def delete(self, kind: str, key: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM cache WHERE kind = ? AND key = ?", (kind, key))

    def clear(self, kinds: Iterable[str] | None = None) -> int:
        with self._lock:
            if kinds is None:
                return self._db.execute("DELETE FROM cache").rowcount
            return sum(self._db.execute("DELETE FROM cache WHERE kind = ?", (k,)).rowcount for k in kinds)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._db.execute("SELECT kind, COUNT(*) FROM cache GROUP BY kind").fetchall())

    # -- run records -----------------------------------------------------------------

    def start_run(self, pipeline: str) -> str:
        run_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        with self._lock:
            self._db.execute(
                "INSERT INTO runs (id, pipeline, started, status, pid) VALUES (?, ?, ?, 'running', ?)",
                (run_id, pipeline, time.time(), os.getpid()),
            )
        return run_id

    def set_total(self, run_id: str, total: int) -> None:
        with self._lock:
            self._db.execute("UPDATE runs SET total = ? WHERE id = ?", (total, run_id))

    def record_input(self, run_id: str, record: Mapping[str, Any]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO run_inputs (run_id, uri, status, stage, plugin, error, timings, cached, tokens, outputs, recorded)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    record["uri"],
                    record["status"],
                    record.get("stage"),
                    record.get("plugin"),
                    record.get("error"),
                    json.dumps(record.get("timings", {})),
                    json.dumps(record.get("cached", [])),
                    record.get("tokens"),
                    json.dumps(record.get("outputs", [])),
                    time.time(),
                ),
            )

    def interrupt_run(self, run_id: str, uris: Iterable[str]) -> None:
        """Mark the run interrupted, and each of ``uris`` that has no record yet (running or
        not started when Ctrl-C came) as interrupted: neither done nor failed, resumed by a rerun."""
        now = time.time()
        with self._lock:
            self._db.executemany(
                "INSERT OR IGNORE INTO run_inputs (run_id, uri, status, timings, cached, outputs, recorded)"
                " VALUES (?, ?, 'interrupted', '{}', '[]', '[]', ?)",
                [(run_id, uri, now) for uri in uris],
            )
            self._db.execute("UPDATE runs SET finished = ?, status = 'interrupted' WHERE id = ?", (now, run_id))

    def finish_run(self, run_id: str, status: str) -> None:
        with self._lock:
            self._db.execute("UPDATE runs SET finished = ?, status = ? WHERE id = ?", (time.time(), status, run_id))

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT r.id, r.pipeline, r.started, r.finished, r.status, r.pid, r.total,"
                " COALESCE(SUM(i.status = 'done'), 0), COALESCE(SUM(i.status = 'failed'), 0), COUNT(i.uri)"
                " FROM runs r LEFT JOIN run_inputs i ON i.run_id = r.id"
                " GROUP BY r.id ORDER BY r.started DESC LIMIT ?",
                (limit,),
            ).fetchall()
        keys = ("id", "pipeline", "started", "finished", "status", "pid", "total", "done", "failed", "inputs")
        runs = [dict(zip(keys, row)) for row in rows]
        for run in runs:
            pid, total = run.pop("pid"), run.pop("total")
            if run["status"] == "running" and not _alive(pid):
                run["status"] = "interrupted"
            run["inputs"] = max(run["inputs"], total or 0)
            # neither done nor failed: interrupted mid-way, or never started
            run["unfinished"] = run["inputs"] - run["done"] - run["failed"]
        return runs

    def run_inputs(self, run_id: str) -> list[dict[str, Any]] | None:
        """What happened to each input of ``run_id``; None when there is no such run."""
        with self._lock:
            if self._db.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                return None
            rows = self._db.execute(
                "SELECT uri, status, stage, plugin, error, timings, cached, tokens, outputs FROM run_inputs"
                " WHERE run_id = ? ORDER BY recorded",
                (run_id,),
            ).fetchall()
        result = []
        for uri, status, stage, plugin, error, timings, cached, tokens, outputs in rows:
            result.append(
                {
                    "uri": uri, "status": status, "stage": stage, "plugin": plugin, "error": error,
                    "timings": json.loads(timings), "cached": json.loads(cached), "tokens": tokens,
                    "outputs": json.loads(outputs),
                }
            )
        return result
