"""Benchmark: a whole study at interactive speed (issue 12), on SQLite and on PostgreSQL.

Run from the repository root:

    .venv/bin/python bench/study_scale.py [--postgres URL] [--dyads 50] [--moments 300]

Builds 50 dyads × 2 recordings × (300 therapist + 300 client) moments — 60,000 moments, half
the recordings with spans (half their moments a span with a peak), 5 % coded by a researcher —
lets the worker compute and store every recording's figures (`ipr.figures`, in this process,
timed separately), then measures through Flask's test client, each as CPU (this process) and
wall, with SQL statement counts where the goal names them:

* the study dashboard: first view, after a restart (a new app: nothing in memory), warm;
* the study CSV export (streamed, read to the end) and the study bundle;
* the timeline API, first call for a recording;
* participant saves (p50/p99/max) while a researcher opens timelines never computed (new
  tolerances: the web process only queues them).

Prints a Markdown table (docs/benchmarks.md records one run). The algorithm rows come from
`bench/algorithms.py`'s `rows()` when that file is present.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import event, insert, select  # noqa: E402

from ipr import auth, figures, recall, studies  # noqa: E402
from ipr.db import upgrade  # noqa: E402
from ipr.models import (  # noqa: E402
    Clip,
    Code,
    Moment,
    RecallSession,
    Recording,
    ResearcherAnnotation,
    Study,
    User,
)
from ipr.storage import Storage  # noqa: E402
from tests.conftest import PASSWORD, Web, jpost, make_app, scratch_postgres  # noqa: E402

DURATION = 50 * 60 * 1000
GOALS = {
    "dashboard": (150, 10),
    "csv": (2000, None),
    "bundle": (5000, None),
    "timeline": (100, None),
    "save_p99": (150, None),
}


@contextmanager
def measured(app: Any) -> Iterator[dict[str, float]]:
    """Wall ms, CPU ms (this process) and SQL statements of the block."""
    out: dict[str, float] = {}
    count = [0]
    engine = app.extensions["ipr_db"].engine

    def seen(*_a: Any, **_k: Any) -> None:
        count[0] += 1

    event.listen(engine, "before_cursor_execute", seen)
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield out
    finally:
        out["wall_ms"] = (time.perf_counter() - wall) * 1000
        out["cpu_ms"] = (time.process_time() - cpu) * 1000
        out["statements"] = count[0]
        event.remove(engine, "before_cursor_execute", seen)


class Skeleton(NamedTuple):
    """A bench study's researcher, study, codes, recordings and recall sessions."""

    user: User
    study: Study
    codes: list[Code]
    recordings: list[Recording]
    sessions: list[tuple[int, int, str]]
    """(recording id, recall session id, participant role), in the order written."""


def skeleton(
    s: Any, name: str, code_names: list[str], n_dyads: int, *, mode: str, clips: bool
) -> Skeleton:
    """A new researcher's study of `n_dyads` dyads × 2 ready 50-minute recordings × a submitted
    recall session per participant (`mode`), with `code_names` as its codebook and, with
    `clips`, each recording's 5-minute clips. Committed; the moments are the caller's."""
    user = auth.create_user(s, f"bench-{uuid.uuid4().hex[:6]}@example.org", PASSWORD, "researcher")
    study = studies.create_study(s, user, name)
    codes = [
        studies.add_code(s, study, user, {"name": code, "colour": "#336699"}) for code in code_names
    ]
    s.commit()
    recs: list[Recording] = []
    sessions: list[tuple[int, int, str]] = []
    for d in range(n_dyads):
        dyad = studies.create_dyad(s, study, user, f"{d:02d}")
        s.flush()
        for k in range(2):
            rec = Recording(
                study_id=study.id, dyad_id=dyad.id, session_label=f"Session {3 + 2 * k}",
                storage_key=Storage.new_key(), status="ready", duration_ms=DURATION,
                width=640, height=360, fps_num=25, fps_den=1, has_audio=True,
            )  # fmt: skip
            s.add(rec)
            s.flush()
            recs.append(rec)
            if clips:
                s.execute(
                    insert(Clip),
                    [
                        {"study_id": study.id, "recording_id": rec.id, "index": i,
                         "start_ms": i * 300_000, "end_ms": (i + 1) * 300_000}
                        for i in range(DURATION // 300_000)
                    ],
                )  # fmt: skip
            for p in dyad.participants:
                rs = RecallSession(
                    study_id=study.id, recording_id=rec.id, participant_id=p.id,
                    status="submitted", mode=mode,
                )  # fmt: skip
                s.add(rs)
                s.flush()
                sessions.append((rec.id, rs.id, p.role))
    s.commit()
    return Skeleton(user, study, codes, recs, sessions)


def build(app: Any, n_dyads: int, n_moments: int) -> dict[str, Any]:
    """The study, written with bulk inserts (the build is not what is measured)."""
    rng = random.Random(0)
    s = app.extensions["ipr_db"].session()
    names = [f"Code {k}" for k in range(6)]
    user, study, codes, recs, sessions = skeleton(
        s, "Scale", names, n_dyads, mode="self", clips=True
    )
    spans = {r.id for i, r in enumerate(recs) if i % 2 == 1}
    for rec_id, rs_id, _role in sessions:
        rows = []
        for _ in range(n_moments):
            t = rng.randrange(0, DURATION - 60_000)
            span = rec_id in spans and rng.random() < 0.5
            end = t + rng.randrange(5_000, 40_000) if span else None
            rows.append(
                {
                    "study_id": study.id, "recall_session_id": rs_id, "t_ms": t, "end_ms": end,
                    "peaks_ms": [t + (end - t) // 2] if end else [],
                    "text": "What happened here " + "x" * rng.randrange(20, 200),
                    "codes": [codes[rng.randrange(6)].id] if rng.random() < 0.6 else [],
                    "ratings": {"hat": rng.randrange(1, 10)}, "version": 1, "phase": "blind",
                }
            )  # fmt: skip
        s.execute(insert(Moment), rows)
    s.commit()
    ids = s.scalars(select(Moment.id).order_by(Moment.id)).all()
    s.execute(
        insert(ResearcherAnnotation),
        [
            {"study_id": study.id, "moment_id": mid, "user_id": user.id,
             "codes": [codes[mid % 6].id], "note": "coded"}
            for mid in ids[:: 20]
        ],
    )  # fmt: skip
    for rec in recs:
        figures.mark_stale(s, rec.id, study.id)
    s.commit()
    client_rs = next(rs for rid, rs, role in sessions if role == "client")
    out = {
        "study": study.id,
        "email": user.email,
        "recordings": [r.id for r in recs],
        "client_rs": client_rs,
        "moments": len(ids),
    }
    s.close()
    return out


def researcher(app: Any, email: str) -> Web:
    web = Web(app)
    web.login(email)
    return web


def worker_run(app: Any) -> dict[str, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    n = figures.run_queued(app.extensions["ipr_db"], dict(app.config))
    return {
        "jobs": n,
        "wall_s": time.perf_counter() - wall,
        "cpu_s": time.process_time() - cpu,
    }


def bench_backend(name: str, root: Path, db_url: str, args: argparse.Namespace) -> list[list[str]]:
    upgrade(db_url)
    app = make_app(root, db_url)
    t0 = time.perf_counter()
    made = build(app, args.dyads, args.moments)
    build_s = time.perf_counter() - t0
    work = worker_run(app)
    rows: list[list[str]] = []

    def row(what: str, m: dict[str, float], goal: str, note: str = "") -> None:
        rows.append(
            [name, what, f"{m['cpu_ms']:.0f}", f"{m['wall_ms']:.0f}",
             str(int(m["statements"])) if "statements" in m else "", goal, note]
        )  # fmt: skip

    study = made["study"]
    web = researcher(app, made["email"])
    with measured(app) as m:
        resp = web.get(f"/studies/{study}/dashboard")
    assert resp.status_code == 200
    row("dashboard, first view", m, "< 150 ms, ≤ 10 statements")
    app2 = make_app(root, db_url)  # a restart: a new app, nothing in memory
    web2 = researcher(app2, made["email"])
    with measured(app2) as m:
        resp = web2.get(f"/studies/{study}/dashboard")
    assert resp.status_code == 200
    row("dashboard, after a restart", m, "< 150 ms, ≤ 10 statements")
    warm = []
    for _ in range(5):
        with measured(app) as m:
            web.get(f"/studies/{study}/dashboard")
        warm.append(m)
    best = min(warm, key=lambda x: x["wall_ms"])
    row("dashboard, warm (best of 5)", best, "< 150 ms, ≤ 10 statements")
    with measured(app) as m:
        resp = web.get(f"/studies/{study}/export?format=csv&include_text=1")
        streamed = resp.is_streamed
        body = resp.get_data()
    assert resp.status_code == 200 and streamed
    n_rows = body.count(b"\r\n") - 1
    row("study CSV export (streamed)", m, "< 2 s", f"{n_rows:,} rows, {len(body) / 1e6:.1f} MB")
    with measured(app) as m:
        resp = web.get(f"/studies/{study}/export?format=bundle&include_text=1")
        body = resp.get_data()
    assert resp.status_code == 200
    row("study bundle", m, "< 5 s", f"{len(body) / 1e6:.1f} MB")
    token_s = app.extensions["ipr_db"].session()
    user = token_s.scalar(select(User).where(User.email == made["email"]))
    _, token = auth.create_api_token(token_s, user, "bench")
    token_s.commit()
    token_s.close()
    api = app.test_client()
    firsts = []
    for rid in made["recordings"][:10]:
        with measured(app) as m:
            resp = api.get(
                f"/api/v1/recordings/{rid}/timeline", headers={"Authorization": f"Bearer {token}"}
            )
        assert resp.status_code == 200 and resp.json["figures_status"]["state"] == "fresh"
        firsts.append(m)
    med = sorted(firsts, key=lambda x: x["wall_ms"])[len(firsts) // 2]
    row("timeline API, first call (median of 10 recordings)", med, "< 100 ms",
        f"{len(resp.data) / 1e3:.0f} kB")  # fmt: skip
    rows.append(saves(app, made, name))
    rows.append(
        [name, "worker: figures of every recording (not a web request)",
         f"{work['cpu_s'] * 1000:.0f}", f"{work['wall_s'] * 1000:.0f}", "", "",
         f"{work['jobs']} jobs; build {build_s:.0f} s"]
    )  # fmt: skip
    app.extensions["ipr_db"].dispose()
    app2.extensions["ipr_db"].dispose()
    return rows


def saves(app: Any, made: dict[str, Any], name: str) -> list[str]:
    """Participant saves while a researcher opens timelines never computed (new tolerances)."""
    s = app.extensions["ipr_db"].session()
    rs = s.get(RecallSession, made["client_rs"])
    rs.status = "in_progress"
    owner = s.scalar(select(User).where(User.email == made["email"]))
    token = recall.issue_link(s, rs, owner, days=1)
    s.commit()
    s.close()
    part = Web(app)
    assert part.get(f"/r/{token}").status_code == 303
    stop = threading.Event()
    opened = [0]

    def open_timelines() -> None:
        web = researcher(app, made["email"])
        k = 0
        while not stop.is_set():
            rid = made["recordings"][k % len(made["recordings"])]
            tol = 100 * (1 + k % 600)
            web.get(f"/recordings/{rid}/timeline?tolerance_ms={tol}")
            opened[0] += 1
            k += 1

    th = threading.Thread(target=open_timelines, daemon=True)
    th.start()
    times = []
    me, sent = threading.get_ident(), [0]

    def count(*_a: Any, **_k: Any) -> None:  # the saves' own statements, not the researcher's
        if threading.get_ident() == me:
            sent[0] += 1

    engine = app.extensions["ipr_db"].engine
    event.listen(engine, "before_cursor_execute", count)
    cpu = time.process_time()
    for i in range(200):
        t = time.perf_counter()
        resp = jpost(part, f"/recall/{made['client_rs']}/moments", {"t_ms": 1000 + i, "text": "s"})
        times.append((time.perf_counter() - t) * 1000)
        assert resp.status_code == 201, resp.get_data(as_text=True)
    cpu_ms = (time.process_time() - cpu) * 1000
    event.remove(engine, "before_cursor_execute", count)
    stop.set()
    th.join()
    times.sort()
    p50, p99 = statistics.median(times), times[int(len(times) * 0.99) - 1]
    return [
        name, "participant save p99 (200 saves) while a researcher opens new timelines",
        f"{cpu_ms / len(times):.0f} per save (both threads)", f"{p99:.0f}",
        f"{sent[0] / len(times):.0f} per save", "p99 < 150 ms",
        f"p50 {p50:.0f} ms, max {times[-1]:.0f} ms; {opened[0]} timelines opened meanwhile",
    ]  # fmt: skip


def algorithm_rows() -> list[list[str]]:
    try:
        from bench import algorithms  # type: ignore[attr-defined]
    except ImportError:
        return []
    rows: Callable[[], list[Any]] = getattr(algorithms, "rows", lambda: [])
    keys = ("name", "before_s", "after_s", "goal")
    return [
        [str(r[k]) for k in keys] if isinstance(r, dict) else [str(c) for c in r] for r in rows()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", default="", help="Server URL (a database is made per run)")
    parser.add_argument("--dyads", type=int, default=50)
    parser.add_argument("--moments", type=int, default=300, help="Per participant and recording")
    parser.add_argument("--only", choices=("sqlite", "postgres"), default=None)
    args = parser.parse_args()
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "sqlite"):
            root = Path(tmp) / "sqlite"
            root.mkdir()
            rows += bench_backend("SQLite", root, f"sqlite:///{root / 'bench.sqlite3'}", args)
        if args.postgres and args.only in (None, "postgres"):
            root = Path(tmp) / "postgres"
            root.mkdir()
            with scratch_postgres(args.postgres, "ipr_bench_") as url:
                rows += bench_backend("PostgreSQL", root, url, args)
    print("| database | what | CPU ms | wall ms | statements | goal | notes |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    extra = algorithm_rows()
    if extra:
        print()
        for r in extra:
            print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
