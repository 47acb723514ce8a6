"""Benchmark: what a participant's save waits on while a researcher opens new timelines.

Run from the repository root:

    .venv/bin/python bench/saves_gil.py [--postgres URL] [--dyads 50] [--rounds 2]

Builds `bench/study_scale.py`'s study, then times 200 participant saves while a researcher
opens never-computed timelines, alternately with the researcher in a thread of the same process
(as `bench/study_scale.py` and one gunicorn worker with `--threads`) and in another process,
and with nobody else. Meanwhile a third connection samples `pg_stat_activity` (PostgreSQL) for
lock and I/O waits. The same p99 in both modes would point at the database; a much higher one
with a thread, at the interpreter lock the two requests share.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, event, select, text  # noqa: E402

from bench.study_scale import build, postgres_database, researcher, worker_run  # noqa: E402
from ipr import recall  # noqa: E402
from ipr.db import upgrade  # noqa: E402
from ipr.models import RecallSession, User  # noqa: E402
from tests.conftest import Web, jpost, make_app  # noqa: E402


def open_timelines(root: str, url: str, made: dict, stop: Any, opened: Any, app: Any = None):
    app = app or make_app(Path(root), url)
    web = researcher(app, made["email"])
    k = int(time.time())
    while not stop.is_set():
        rid = made["recordings"][k % len(made["recordings"])]
        web.get(f"/recordings/{rid}/timeline?tolerance_ms={100 * (1 + k % 600)}")
        opened.value += 1
        k += 1


def sample_waits(url: str, stop: threading.Event, seen: Counter) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    name = engine.url.database
    with engine.connect() as conn:
        while not stop.is_set():
            for kind, what, query in conn.execute(
                text(
                    "SELECT wait_event_type, wait_event, left(query, 40) FROM pg_stat_activity "
                    "WHERE datname = :n AND pid <> pg_backend_pid()"
                ),
                {"n": name},
            ):
                seen["samples"] += 1
                if kind in ("Lock", "LWLock", "IO"):
                    seen[f"{kind}:{what} ({query})"] += 1
            time.sleep(0.005)
    engine.dispose()


def saves(root: Path, url: str, made: dict, mode: str) -> str:
    app = make_app(root, url)
    s = app.extensions["ipr_db"].session()
    rs = s.get(RecallSession, made["client_rs"])
    rs.status = "in_progress"
    owner = s.scalar(select(User).where(User.email == made["email"]))
    token = recall.issue_link(s, rs, owner, days=1)
    s.commit()
    s.close()
    part = Web(app)
    assert part.get(f"/r/{token}").status_code == 303
    spawn = mp.get_context("spawn")  # a fresh interpreter: no connection shared with this one
    stop = spawn.Event()
    opened = spawn.Value("i", 0)
    other: Any = None
    if mode == "thread":
        other = threading.Thread(
            target=open_timelines, args=(str(root), url, made, stop, opened, app), daemon=True
        )
    elif mode == "process":
        other = spawn.Process(target=open_timelines, args=(str(root), url, made, stop, opened))
    waits: Counter = Counter()
    sampler_stop = threading.Event()
    sampler = None
    if url.startswith("postgresql"):
        sampler = threading.Thread(target=sample_waits, args=(url, sampler_stop, waits))
        sampler.start()
    if other is not None:
        other.start()
        time.sleep(1.0)
    me, sent = threading.get_ident(), [0]

    def count(*_a: Any, **_k: Any) -> None:
        if threading.get_ident() == me:
            sent[0] += 1

    engine = app.extensions["ipr_db"].engine
    event.listen(engine, "before_cursor_execute", count)
    times = []
    for i in range(200):
        t = time.perf_counter()
        resp = jpost(part, f"/recall/{made['client_rs']}/moments", {"t_ms": 1000 + i, "text": "s"})
        times.append((time.perf_counter() - t) * 1000)
        assert resp.status_code == 201, resp.get_data(as_text=True)
        made["saved"] += 1
    event.remove(engine, "before_cursor_execute", count)
    stop.set()
    sampler_stop.set()
    if other is not None:
        other.join()
    if sampler is not None:
        sampler.join()
    app.extensions["ipr_db"].dispose()
    with create_engine(url).begin() as conn:  # the saves again, so the next round may save
        conn.execute(
            text("DELETE FROM moments WHERE recall_session_id = :rs AND text = 's'"),
            {"rs": made["client_rs"]},
        )
    times.sort()
    top = ", ".join(f"{k} ×{v}" for k, v in waits.most_common(4) if k != "samples")
    return (
        f"| {mode} | {statistics.median(times):.0f} | {times[int(len(times) * 0.99) - 1]:.0f} | "
        f"{times[-1]:.0f} | {sent[0] / len(times):.0f} | {opened.value} | "
        f"{waits['samples']} samples; {top or 'no lock or I/O waits'} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", default="", help="Server URL (a database is made per run)")
    parser.add_argument("--dyads", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.postgres:
            context: Any = postgres_database(args.postgres)
        else:
            from contextlib import nullcontext

            context = nullcontext(f"sqlite:///{root / 'bench.sqlite3'}")
        with context as url:
            upgrade(url)
            app = make_app(root, url)
            made = build(app, args.dyads, 300)
            worker_run(app)
            app.extensions["ipr_db"].dispose()
            made["saved"] = 0
            for _ in range(args.rounds):
                for mode in ("thread", "process", "alone"):
                    rows.append(saves(root, url, made, mode))
    print("| researcher | save p50 ms | p99 ms | max ms | statements per save | timelines "
          "opened | database waits sampled |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
