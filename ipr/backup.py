"""`ipr backup DIR` and `ipr restore DIR`: a consistent snapshot of a running instance, and back.

A backup folder holds the database (SQLite's online backup API, or ``pg_dump`` in its custom
format: both one consistent snapshot while the app keeps writing), the media folder, and
``manifest.json`` with the SHA-256 and size of every file. The database is taken *first*, so
every file a row names was already on disk when the media were copied (files that appear later
are copied too and are simply unused). Prepared export ZIPs and unfinished temporary uploads
are caches and are left out.

Restore checks every checksum before it touches anything, refuses a target that already holds
data unless forced, loads the database, copies the media and brings the schema to the latest
migration. Jobs that were queued or running at backup time are queued again by the first
worker (stale heartbeat, or a queued job nobody started for ten minutes).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import URL, make_url

from ipr.db import upgrade

FORMAT = "ipr-backup/1"
MANIFEST = "manifest.json"
MEDIA = "media"
CHUNK = 1024 * 1024
PG_TIMEOUT_S = 6 * 3600


class BackupError(Exception):
    """A backup or restore that cannot go on; the message says what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Summary:
    database: str
    files: int
    bytes: int


def _backend(url: str) -> str:
    name = make_url(url).get_backend_name()
    if name not in ("sqlite", "postgresql"):
        raise BackupError(f"Backups support SQLite and PostgreSQL, not {name}.")
    return name


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError("An in-memory SQLite database cannot be backed up.")
    return Path(database)


def _pg_args(url: str) -> tuple[list[str], dict[str, str]]:
    """libpq connection arguments and environment; the password goes in PGPASSWORD, not argv."""
    parsed: URL = make_url(url)
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    args = ["--dbname", parsed.database or "postgres"]
    if parsed.host:
        args += ["--host", parsed.host]
    if parsed.port:
        args += ["--port", str(parsed.port)]
    if parsed.username:
        args += ["--username", parsed.username]
    return args, env


def _run(args: list[str], env: dict[str, str]) -> None:
    try:
        subprocess.run(args, env=env, check=True, capture_output=True, timeout=PG_TIMEOUT_S)
    except FileNotFoundError:
        raise BackupError(f"{args[0]} is not installed on this machine.") from None
    except subprocess.CalledProcessError as exc:
        detail = exc.stderr.decode(errors="replace").strip().splitlines()
        raise BackupError(f"{args[0]} failed: {detail[-1] if detail else exc}") from None


def _copy_hashed(src: Path, dst: Path) -> tuple[str, int]:
    """Copy in one read, hashing as it goes; returns (sha256, bytes)."""
    digest, size = hashlib.sha256(), 0
    dst.parent.mkdir(parents=True, exist_ok=True)
    with src.open("rb") as fin, dst.open("wb") as fout:
        while chunk := fin.read(CHUNK):
            digest.update(chunk)
            fout.write(chunk)
            size += len(chunk)
        fout.flush()
        os.fsync(fout.fileno())
    shutil.copystat(src, dst)
    return digest.hexdigest(), size


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def media_files(root: Path) -> Iterator[Path]:
    """Every file worth keeping under the media folder, sorted; caches and temporaries left out."""
    if not root.is_dir():
        return
    for top in sorted(root.iterdir()):
        if top.name == ".exports" or top.name.startswith(("tmp", ".readyz-")):
            continue
        if top.is_file():
            yield top
            continue
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            for name in sorted(filenames):
                yield Path(dirpath) / name


def _row_counts(url: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            names = inspect(conn).get_table_names()
            return {
                n: conn.execute(text(f'SELECT COUNT(*) FROM "{n}"')).scalar_one()  # noqa: S608
                for n in sorted(names)
            }
    finally:
        engine.dispose()


def backup(database_url: str, media_root: Path, target: Path) -> Summary:
    """Write a snapshot of the database and the media folder into ``target`` (new or empty)."""
    kind = _backend(database_url)
    if target.exists() and any(target.iterdir()):
        raise BackupError(f"{target} is not empty; back up into a new folder.")
    target.mkdir(parents=True, exist_ok=True)
    if kind == "sqlite":
        db_file = target / "database.sqlite3"
        source = sqlite3.connect(_sqlite_path(database_url), timeout=30)
        dest = sqlite3.connect(db_file)
        try:
            with dest:
                source.backup(dest)  # online: one consistent state, writers carry on
            dest.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        finally:
            dest.close()
            source.close()
        counts = _row_counts(f"sqlite:///{db_file}")
    else:
        db_file = target / "database.pgdump"
        args, env = _pg_args(database_url)
        _run(["pg_dump", "--format=custom", "--no-owner", "--no-privileges",
              "--file", str(db_file), *args], env)  # fmt: skip
        counts = {}
    entries: list[dict[str, Any]] = []
    total = 0
    for path in media_files(media_root):
        relative = path.relative_to(media_root).as_posix()
        try:
            digest, size = _copy_hashed(path, target / MEDIA / relative)
        except FileNotFoundError:
            continue  # deleted with its recording while we copied: its rows are in the snapshot
        entries.append({"path": relative, "bytes": size, "sha256": digest})
        total += size
    manifest = {
        "format": FORMAT,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "database": {
            "kind": kind,
            "file": db_file.name,
            "bytes": db_file.stat().st_size,
            "sha256": sha256_of(db_file),
            "rows": counts,
        },
        "media": entries,
    }
    (target / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return Summary(kind, len(entries), total)


def read_manifest(source: Path) -> dict[str, Any]:
    path = source / MANIFEST
    if not path.is_file():
        raise BackupError(f"{source} holds no {MANIFEST}: not an IPR backup.")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("format") != FORMAT:
        raise BackupError(f"Unknown backup format {manifest.get('format')!r}.")
    return manifest


def verify(source: Path) -> dict[str, Any]:
    """Check every file of the backup against the manifest; raise naming the first bad one."""
    manifest = read_manifest(source)
    files = [(manifest["database"]["file"], manifest["database"]["sha256"])]
    files += [(f"{MEDIA}/{e['path']}", e["sha256"]) for e in manifest["media"]]
    for relative, expected in files:
        path = source / relative
        if not path.is_file():
            raise BackupError(f"The backup is incomplete: {relative} is missing.")
        if sha256_of(path) != expected:
            raise BackupError(f"The backup is damaged: {relative} does not match its checksum.")
    return manifest


def _database_has_data(url: str) -> bool:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return bool(inspect(conn).get_table_names())
    except Exception:  # noqa: BLE001 — a SQLite file that is not there yet is empty
        return False
    finally:
        engine.dispose()


def restore(source: Path, database_url: str, media_root: Path, *, force: bool = False) -> Summary:
    """Rebuild an instance from a backup: database, media, then the latest migration."""
    manifest = verify(source)
    kind = _backend(database_url)
    if manifest["database"]["kind"] != kind:
        raise BackupError(
            f"This backup holds a {manifest['database']['kind']} database; the target is {kind}."
        )
    occupied = []
    if _database_has_data(database_url):
        occupied.append("the database has tables")
    if media_root.exists() and any(media_root.iterdir()):
        occupied.append(f"{media_root} is not empty")
    if occupied and not force:
        raise BackupError(
            f"The target is not empty ({'; '.join(occupied)}). Restore into a fresh instance, "
            "or pass --force to replace everything in it."
        )
    dump = source / manifest["database"]["file"]
    if kind == "sqlite":
        target = _sqlite_path(database_url)
        target.parent.mkdir(parents=True, exist_ok=True)
        src = sqlite3.connect(dump)
        dest = sqlite3.connect(target, timeout=30)
        try:
            with dest:
                src.backup(dest)
            dest.execute("PRAGMA journal_mode=WAL")
        finally:
            dest.close()
            src.close()
    else:
        engine = create_engine(database_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
        finally:
            engine.dispose()
        args, env = _pg_args(database_url)
        _run(["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error", *args,
              str(dump)], env)  # fmt: skip
    if media_root.exists():
        for child in media_root.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    media_root.mkdir(parents=True, exist_ok=True)
    total = 0
    for entry in manifest["media"]:
        digest, size = _copy_hashed(source / MEDIA / entry["path"], media_root / entry["path"])
        if digest != entry["sha256"]:
            raise BackupError(f"{entry['path']} changed while it was restored; run again.")
        total += size
    upgrade(database_url)
    return Summary(kind, len(manifest["media"]), total)
