"""The run store: one SQLite file holding stage results under content-addressed keys and a
record of every run, so a rerun after a crash, Ctrl-C or kill -9 continues where it stopped.

SQLite commits are atomic and survive a killed process; WAL mode lets several threads of one
run read while one writes. Schema changes are an ordered list of migrations (like llm's).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterable, Mapping

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


class RunStore:
    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, timeout=30, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._migrate()

    def _migrate(self) -> None:
        with self._lock:
            current = self._db.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(MIGRATIONS[current:], start=current + 1):
                self._db.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")

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

    def finish_run(self, run_id: str, status: str) -> None:
        with self._lock:
            self._db.execute("UPDATE runs SET finished = ?, status = ? WHERE id = ?", (time.time(), status, run_id))

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT r.id, r.pipeline, r.started, r.finished, r.status, r.pid,"
                " SUM(i.status = 'done'), SUM(i.status = 'failed'), COUNT(i.uri)"
                " FROM runs r LEFT JOIN run_inputs i ON i.run_id = r.id"
                " GROUP BY r.id ORDER BY r.started DESC LIMIT ?",
                (limit,),
            ).fetchall()
        keys = ("id", "pipeline", "started", "finished", "status", "pid", "done", "failed", "inputs")
        runs = [dict(zip(keys, row)) for row in rows]
        for run in runs:
            if run["status"] == "running" and not _alive(run.pop("pid")):
                run["status"] = "interrupted"
            run.pop("pid", None)
        return runs

    def run_inputs(self, run_id: str) -> list[dict[str, Any]]:
        with self._lock:
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
