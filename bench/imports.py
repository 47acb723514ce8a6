"""Benchmark: a CSV import of N moments through the app's import path, and a refused 300k file.

Run from the repository root: `.venv/bin/python bench/imports.py [--rows 10000]`. Uses a fresh
SQLite database in a temporary folder (the embedded default). Prints the time and rows/s of a
whole import (parse, check, one transaction) and the time and peak traced memory of refusing a
300,000-row file at the row limit.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import contextlib

from app import create_app  # noqa: E402
from ipr import auth, dataset, studies  # noqa: E402
from ipr.db import upgrade  # noqa: E402
from ipr.models import Recording  # noqa: E402
from ipr.storage import Storage  # noqa: E402


def csv_rows(n: int) -> bytes:
    return b"start_ms,end_ms,text,rating_hat\r\n" + b"".join(
        b"%d,%d,moment number %d,%d\r\n" % (i, i + 500, i, 1 + i % 9) for i in range(n)
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.sqlite3"
        upgrade(url)
        app = create_app(
            {"INSTANCE_PATH": f"{tmp}/instance", "DATABASE_URL": url,
             "RECORDINGS_DIR": f"{tmp}/rec", "SECRET_KEY": "bench"}
        )  # fmt: skip
        db = app.extensions["ipr_db"].session()
        owner = auth.create_user(db, "b@example.org", "bench password 123", "researcher")
        study = studies.create_study(db, owner, "Bench")
        dyad = studies.create_dyad(db, study, owner, "01")
        rec = Recording(
            study_id=study.id, dyad_id=dyad.id, session_label="S", storage_key=Storage.new_key(),
            status="ready", duration_ms=10**9,
        )  # fmt: skip
        db.add(rec)
        db.commit()
        data = csv_rows(args.rows)
        start = time.perf_counter()
        found = dataset.read_import(study, io.BytesIO(data), "csv", max_rows=args.rows)
        dataset.import_moments(db, rec, dyad.participant("client"), found, user=owner, fmt="csv")
        took = time.perf_counter() - start
        print(f"import of {args.rows} rows: {took:.2f} s ({args.rows / took:,.0f} rows/s)")
        big = csv_rows(300_000)
        tracemalloc.start()
        start = time.perf_counter()
        with contextlib.suppress(dataset.ImportTooLarge):
            dataset.read_import(study, io.BytesIO(big), "csv", max_rows=10_000)
        took = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(
            f"300,000-row file ({len(big) / 1e6:.1f} MB) refused at 10,000 rows: {took:.2f} s, "
            f"peak traced memory {peak / 1e6:.1f} MB"
        )
        db.close()
        app.extensions["ipr_db"].dispose()


if __name__ == "__main__":
    main()
