"""The service's jobs on disk: one SQLite table and two folders, written so that a crash loses nothing.

Layout of a data directory::

    DIR/jobs.sqlite3          the job table (WAL journal, synchronous=FULL: a commit is on disk when it returns)
    DIR/uploads/.partial/     uploads being received (deleted at start: the client was never answered 202)
    DIR/uploads/<id><.ext>    accepted uploads; the name is the job id (never the client's file name), the
                              extension one of the known video extensions or none
    DIR/results/<id>.png      the timeline picture of a finished job

Order of writes, so that every state a kill can leave is either complete or cleaned up at the next start:

- accept: upload fsynced in ``.partial/`` -> renamed into ``uploads/`` (folder fsynced) -> row inserted
  (committed) -> the 202. A kill before the commit leaves a file without a row, deleted at start.
- finish: row updated to ``done`` with its result. A kill before the update leaves the job ``running``: it is
  queued again at start and runs from the beginning.
- timeline (drawn on its first request): picture written atomically -> its name recorded in the row. A kill in
  between leaves a picture without a name, deleted at start and drawn again when asked for.
- delete: row deleted -> upload and timeline unlinked. A kill in between leaves files without a row,
  deleted at start.
- expire (``--keep-uploads``): upload unlinked -> ``upload_removed`` recorded in the row. A kill in between
  leaves a row whose upload is gone: expired again (the unlink is a no-op) at the next sweep.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from divita.errors import DivitaError

STATUSES = ("queued", "running", "done", "failed")
MAX_ATTEMPTS = 3  # a job the server died on this many times is failed, so that one upload cannot stop it for good

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    id        TEXT NOT NULL UNIQUE,
    status    TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
    filename  TEXT NOT NULL,
    upload    TEXT NOT NULL,
    size      INTEGER NOT NULL,
    created   REAL NOT NULL,
    started   REAL,
    finished  REAL,
    attempts  INTEGER NOT NULL DEFAULT 0,
    result    TEXT,
    error     TEXT,
    timeline  TEXT,
    duration  REAL,
    upload_removed REAL
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, seq);
"""
_ADDED_COLUMNS = {"duration": "REAL", "upload_removed": "REAL"}  # absent from tables written before them


def iso_time(t: float | None) -> str | None:
    """Seconds since the epoch -> ISO 8601 UTC with milliseconds (``2024-05-01T12:00:00.123Z``), None stays None."""
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_job_id() -> str:
    """32 random hex digits: unguessable, and safe as a file name."""
    return secrets.token_hex(16)


def is_job_id(text: str) -> bool:
    return len(text) == 32 and all(c in "0123456789abcdef" for c in text)


def display_name(filename: str | None) -> str:
    """The client's file name as a label only (never a path): its last component, printable, at most 200 chars."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable()).strip()
    return name[:200] or "upload"


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class Job:
    """One row of the job table."""

    id: str
    status: str
    filename: str
    upload: str
    size: int
    created: float
    started: float | None
    finished: float | None
    attempts: int
    result: dict | None
    error: str | None
    timeline: str | None
    duration: float | None = None  # seconds of video its container declares (0: unknown)
    upload_removed: float | None = None  # when the upload was removed after --keep-uploads

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        d = dict(row)
        d.pop("seq", None)
        d["result"] = json.loads(d["result"]) if d["result"] else None
        return cls(**d)

    def public(self, with_result: bool = True) -> dict:
        """The JSON object ``GET /v1/predictions/{id}`` answers (``with_result=False``: the list's summary,
        whose ``genres`` and ``predicted`` come from the result)."""
        out: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "filename": self.filename,
            "size": self.size,
            "created": iso_time(self.created),
            "started": iso_time(self.started),
            "finished": iso_time(self.finished),
            "attempts": self.attempts,
        }
        if with_result:
            out["result"] = self.result
        else:
            out["genres"] = (self.result or {}).get("genres")
            out["predicted"] = (self.result or {}).get("predicted")
        out["error"] = self.error
        out["upload_removed"] = iso_time(self.upload_removed)
        return out


class JobStore:
    """The job table of one data directory. Safe to share between threads (one connection behind a lock);
    one process per data directory (a second one is refused while the first holds its lock file)."""

    def __init__(self, data_dir: str | os.PathLike):
        self.root = Path(data_dir)
        self.uploads = self.root / "uploads"
        self.partial = self.uploads / ".partial"
        self.results = self.root / "results"
        try:
            for d in (self.root, self.uploads, self.partial, self.results):
                d.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DivitaError(self.root, f"cannot create the data directory ({e.strerror or e})") from None
        self._lock_file = _lock_data_dir(self.root)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.root / "jobs.sqlite3", check_same_thread=False, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            have = {r[1] for r in self._db.execute("PRAGMA table_info(jobs)")}
            for name, kind in _ADDED_COLUMNS.items():
                if name not in have:
                    self._db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {kind}")
        except sqlite3.DatabaseError as e:
            raise DivitaError(self.root / "jobs.sqlite3", f"not a usable job table ({e})") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()
        self._lock_file.close()

    # -- start-up ----------------------------------------------------------------------------------------
    def recover(self) -> dict[str, int]:
        """After a stop of any kind: jobs left running are queued again (or failed after ``MAX_ATTEMPTS``
        starts), files without a row are deleted. Returns counts of what was done."""
        counts = {"requeued": 0, "gave_up": 0, "orphans": 0}
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            rows = self._db.execute("SELECT id, attempts FROM jobs WHERE status = 'running'").fetchall()
            for r in rows:
                if r["attempts"] >= MAX_ATTEMPTS:
                    self._db.execute(
                        "UPDATE jobs SET status = 'failed', finished = ?, error = ? WHERE id = ?",
                        (time.time(), f"the server stopped {r['attempts']} times while running this job", r["id"]),
                    )
                    counts["gave_up"] += 1
                else:
                    self._db.execute("UPDATE jobs SET status = 'queued', started = NULL WHERE id = ?", (r["id"],))
                    counts["requeued"] += 1
            self._db.execute("COMMIT")
            uploads = {r[0] for r in self._db.execute("SELECT upload FROM jobs")}
            timelines = {r[0] for r in self._db.execute("SELECT timeline FROM jobs WHERE timeline IS NOT NULL")}
        for p in self.partial.iterdir():
            p.unlink(missing_ok=True)
            counts["orphans"] += 1
        for folder, keep in ((self.uploads, uploads), (self.results, timelines)):
            for p in folder.iterdir():
                if p.is_file() and p.name not in keep:
                    p.unlink(missing_ok=True)
                    counts["orphans"] += 1
        return counts

    # -- accepting ---------------------------------------------------------------------------------------
    def partial_path(self, job_id: str) -> Path:
        return self.partial / job_id

    def accept(
        self,
        job_id: str,
        filename: str,
        partial: Path,
        suffix: str,
        size: int,
        max_queue: int,
        duration: float | None = None,
    ) -> Job | None:
        """Move a received, probed upload into place and queue its job; None (upload deleted) when the
        queue already holds ``max_queue`` jobs. ``duration``: seconds of video the container declares.
        The row is committed when this returns."""
        name = job_id + suffix
        final = self.uploads / name
        os.replace(partial, final)
        fsync_dir(self.uploads)
        fsync_dir(self.partial)
        with self._lock:
            (queued,) = self._db.execute("SELECT COUNT(*) FROM jobs WHERE status = 'queued'").fetchone()
            if queued >= max_queue:
                final.unlink(missing_ok=True)
                return None
            self._db.execute(
                "INSERT INTO jobs (id, status, filename, upload, size, created, duration) "
                "VALUES (?, 'queued', ?, ?, ?, ?, ?)",
                (job_id, filename, name, size, time.time(), duration),
            )
            row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return Job.from_row(row)

    # -- the worker's side -------------------------------------------------------------------------------
    def claim(self) -> Job | None:
        """The oldest queued job, now marked running (its start counted), or None when none waits."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute("SELECT id FROM jobs WHERE status = 'queued' ORDER BY seq LIMIT 1").fetchone()
            if row is None:
                self._db.execute("COMMIT")
                return None
            self._db.execute(
                "UPDATE jobs SET status = 'running', started = ?, attempts = attempts + 1 WHERE id = ?",
                (time.time(), row["id"]),
            )
            job = self._db.execute("SELECT * FROM jobs WHERE id = ?", (row["id"],)).fetchone()
            self._db.execute("COMMIT")
        return Job.from_row(job)

    def finish(self, job_id: str, result: dict) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET status = 'done', finished = ?, result = ?, error = NULL WHERE id = ?",
                (time.time(), json.dumps(result), job_id),
            )

    def set_timeline(self, job_id: str, name: str) -> None:
        """Record the file name (in ``results/``) of a done job's timeline picture."""
        with self._lock:
            self._db.execute("UPDATE jobs SET timeline = ? WHERE id = ? AND status = 'done'", (name, job_id))

    def fail(self, job_id: str, reason: str) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET status = 'failed', finished = ?, error = ? WHERE id = ?", (time.time(), reason, job_id)
            )

    def retry_or_fail(self, job_id: str, reason: str) -> str:
        """A job whose worker died under it: queued again, or failed with ``reason`` once it has been
        started ``MAX_ATTEMPTS`` times. Returns the new status."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute(
                "SELECT attempts FROM jobs WHERE id = ? AND status = 'running'", (job_id,)
            ).fetchone()
            status = "gone"
            if row is not None and row["attempts"] >= MAX_ATTEMPTS:
                self._db.execute(
                    "UPDATE jobs SET status = 'failed', finished = ?, error = ? WHERE id = ?",
                    (time.time(), f"{reason} ({row['attempts']} times)", job_id),
                )
                status = "failed"
            elif row is not None:
                self._db.execute("UPDATE jobs SET status = 'queued', started = NULL WHERE id = ?", (job_id,))
                status = "queued"
            self._db.execute("COMMIT")
        return status

    # -- retention ---------------------------------------------------------------------------------------
    def expire_uploads(self, keep_s: float, now: float | None = None) -> list[str]:
        """Remove the uploads of jobs that ended (done or failed) more than ``keep_s`` seconds ago and record
        when in their rows (results and timeline pictures are kept). Returns the ids of the jobs touched."""
        now = time.time() if now is None else now
        with self._lock:
            rows = self._db.execute(
                "SELECT id, upload FROM jobs WHERE status IN ('done', 'failed') AND finished < ? "
                "AND upload_removed IS NULL",
                (now - keep_s,),
            ).fetchall()
        removed = []
        for r in rows:
            (self.uploads / r["upload"]).unlink(missing_ok=True)
            with self._lock:
                self._db.execute("UPDATE jobs SET upload_removed = ? WHERE id = ?", (now, r["id"]))
            removed.append(r["id"])
        return removed

    def disk_bytes(self) -> int:
        """Bytes the data directory holds: the job table (with its journal), uploads (partial ones too) and
        results."""
        total = 0
        for folder in (self.root, self.uploads, self.partial, self.results):
            for p in folder.iterdir():
                try:
                    if p.is_file():
                        total += p.stat().st_size
                except OSError:  # removed while counted
                    pass
        return total

    # -- reading and deleting ----------------------------------------------------------------------------
    def get(self, job_id: str) -> Job | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return Job.from_row(row) if row else None

    def recent(self, limit: int, offset: int) -> tuple[list[Job], int]:
        """The ``limit`` newest jobs after skipping ``offset``, and the number of jobs in all."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs ORDER BY seq DESC LIMIT ? OFFSET ?", (limit, offset)).fetchall()
            (total,) = self._db.execute("SELECT COUNT(*) FROM jobs").fetchone()
        return [Job.from_row(r) for r in rows], total

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
        return {s: 0 for s in STATUSES} | {r[0]: r[1] for r in rows}

    def mean_seconds(self, last: int = 20) -> float | None:
        """Mean run time of the last ``last`` finished jobs (None before the first)."""
        with self._lock:
            (mean,) = self._db.execute(
                "SELECT AVG(finished - started) FROM (SELECT finished, started FROM jobs WHERE status = 'done' "
                "AND started IS NOT NULL ORDER BY seq DESC LIMIT ?)",
                (last,),
            ).fetchone()
        return None if mean is None or math.isnan(mean) else float(mean)

    def delete(self, job_id: str) -> str:
        """Delete a job that is not running, with its upload and timeline: "deleted", "running" or "unknown"."""
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return "unknown"
            if row["status"] == "running":
                return "running"
            self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        (self.uploads / row["upload"]).unlink(missing_ok=True)
        if row["timeline"]:
            (self.results / row["timeline"]).unlink(missing_ok=True)
        return "deleted"


def _lock_data_dir(root: Path):
    """An exclusive lock on ``root/.lock`` held for the store's life: two servers on one data directory would
    run each other's jobs twice and delete each other's uploads."""
    import fcntl

    f = open(root / ".lock", "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise DivitaError(root, "data directory in use by another `divita serve` (its .lock is held)") from None
    return f
