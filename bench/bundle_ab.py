"""Benchmark: the study bundle of this tree against a base commit's, alternately, on one study.

Run from the repository root:

    .venv/bin/python bench/bundle_ab.py [--base REV] [--dyads 50] [--rounds 3] [--postgres URL]

Builds `bench/study_scale.py`'s study once (SQLite, or a new PostgreSQL database with
--postgres) and lets this tree's worker compute its figures, then makes the study bundle as the
app does (`ipr.dataset.export`) in a fresh process of each tree in
turn, `--rounds` times: CPU time of that process, SQL statements, bytes, and the SHA-256 of every
file in the ZIP (both trees export with the same date and commit, so every file must be
identical). On a shared, loaded machine the CPU ratio from pairs run back to back is the figure
to trust; wall time needs a quiet machine (`bench/study_scale.py`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# One export in the tree it runs in (cwd); prints one JSON line.
EXPORT = r"""
import datetime as dt, hashlib, io, json, sys, time, zipfile
sys.path.insert(0, ".")
from sqlalchemy import event
from ipr import dataset
from ipr.models import Study
from ipr.storage import Storage
from tests.conftest import make_app

made = json.loads(sys.argv[1])
app = make_app(__import__("pathlib").Path(made["root"]), made["url"])
engine = app.extensions["ipr_db"].engine
count = [0]
event.listen(engine, "before_cursor_execute", lambda *a, **k: count.__setitem__(0, count[0] + 1))
db = app.extensions["ipr_db"].session()
storage = Storage(app.config["RECORDINGS_DIR"])
study = db.get(Study, made["study"])
real = dataset.export_data  # the same date in both trees, so their files can be compared
dataset.export_data = lambda db, obj, _now: real(db, obj, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
count[0] = 0
cpu, wall = time.process_time(), time.perf_counter()
result = dataset.export(db, storage, study, "bundle", actor="bench")
body = result.content
out = {
    "cpu_ms": (time.process_time() - cpu) * 1000, "wall_ms": (time.perf_counter() - wall) * 1000,
    "statements": count[0], "bytes": len(body),
}
with zipfile.ZipFile(io.BytesIO(body)) as z:
    out["files"] = {n: hashlib.sha256(z.read(n)).hexdigest() for n in z.namelist()}
print(json.dumps(out))
"""


def base_tree(rev: str, into: Path) -> Path:
    """The base commit's files (git archive), with this tree's virtualenv."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", rev],
        check=True,
        capture_output=True,
    ).stdout
    target = into / "base"
    target.mkdir()
    with tarfile.open(fileobj=__import__("io").BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target


def export_in(tree: Path, made: dict) -> dict:
    env = {**os.environ, "IPR_GIT_COMMIT": "0000000"}
    done = subprocess.run(
        [sys.executable, "-c", EXPORT, json.dumps(made)],
        cwd=tree,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    from bench.study_scale import build, postgres_database, worker_run
    from ipr.db import upgrade
    from tests.conftest import make_app

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", default="8c334cd", help="The commit to compare with")
    parser.add_argument("--dyads", type=int, default=50)
    parser.add_argument("--moments", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", default="", help="Server URL (a database is made per run)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "study"
        root.mkdir()
        base = base_tree(args.base, Path(tmp))
        if args.postgres:
            context = postgres_database(args.postgres)
        else:
            from contextlib import nullcontext

            context = nullcontext(f"sqlite:///{root / 'bench.sqlite3'}")
        with context as url:
            upgrade(url)
            app = make_app(root, url)
            made = build(app, args.dyads, args.moments)
            work = worker_run(app)
            app.extensions["ipr_db"].dispose()
            print(f"{made['moments']:,} moments, {len(made['recordings'])} recordings; worker "
                  f"{work['cpu_s']:.1f} s CPU for {work['jobs']} jobs")  # fmt: skip
            info = {"root": str(root), "url": url, "study": made["study"]}
            runs: dict[str, list[dict]] = {"base": [], "this": []}
            for _ in range(args.rounds):
                for name, tree in (("base", base), ("this", ROOT)):
                    runs[name].append(export_in(tree, info))
            same = runs["base"][0]["files"] == runs["this"][0]["files"]
    print(f"| tree | CPU ms (median of {args.rounds}) | wall ms (median) | statements | MB |")
    print("|---|---|---|---|---|")
    for name, rs in runs.items():
        cpu = statistics.median(r["cpu_ms"] for r in rs)
        wall = statistics.median(r["wall_ms"] for r in rs)
        print(f"| {name} | {cpu:,.0f} | {wall:,.0f} | {rs[0]['statements']} | "
              f"{rs[0]['bytes'] / 1e6:.1f} |")  # fmt: skip
    ratios = [b["cpu_ms"] / t["cpu_ms"] for b, t in zip(runs["base"], runs["this"], strict=True)]
    print(f"\nCPU ratio base/this per round: {', '.join(f'{r:.2f}' for r in ratios)}")
    print(f"every file identical: {same} ({len(runs['this'][0]['files'])} files)")


if __name__ == "__main__":
    main()
