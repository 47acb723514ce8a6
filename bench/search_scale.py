"""Benchmark: the study search page (issue 16) on a study of 100 recordings, SQLite and PostgreSQL.

Run from the repository root:

    .venv/bin/python bench/search_scale.py [--postgres URL] [--dyads 50] [--moments 100]
        [--utterances 300]

Builds 50 dyads × 2 recordings × (therapist + client) × 100 moments — 20,000 moments with
comments from a small vocabulary, 60 % coded, 5 % with a researcher's note — and one recall
interview transcript per client session of 300 utterances (30,000 utterances, attached to the
client's moments). Then times `ipr.search.search` (the page's whole work; the page adds only
rendering) for a rare word, a common word (more than the 50 shown), two words, a code's name and a
word found nowhere: median of 5 runs, wall ms. Prints a Markdown table (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert, select  # noqa: E402

from bench.study_scale import DURATION, skeleton  # noqa: E402
from ipr import search  # noqa: E402
from ipr.db import upgrade  # noqa: E402
from ipr.models import (  # noqa: E402
    InterviewUtterance,
    Moment,
    ResearcherAnnotation,
)
from tests.conftest import make_app, scratch_postgres  # noqa: E402

WORDS = [
    "I",
    "felt",
    "quiet",
    "angry",
    "relieved",
    "understood",
    "lost",
    "close",
    "distant",
    "warm",
    "tense",
    "calm",
    "tired",
    "hopeful",
    "she",
    "he",
    "we",
    "said",
    "noticed",
    "wanted",
    "waited",
    "looked",
    "pushed",
    "held",
    "back",
    "named",
    "the",
    "tension",
    "silence",
    "moment",
    "here",
    "there",
    "again",
    "mother",
    "father",
    "work",
    "sleep",
    "body",
    "chest",
    "breath",
]
QUERIES = (
    ("a rare word", "zebra"),
    ("a common word", "tension"),
    ("two words", "chest breath"),
    ("a code's name", "rupture"),
    ("found nowhere", "qwertyuiop"),
)


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def build(app: Any, n_dyads: int, n_moments: int, n_utterances: int) -> dict[str, Any]:
    rng = random.Random(0)
    s = app.extensions["ipr_db"].session()
    names = ["insight", "rupture", "repair", "empathy", "avoidance", "humour"]
    user, study, codes, _recs, made = skeleton(
        s, "Search scale", names, n_dyads, mode="researcher", clips=False
    )
    sessions = [(rs_id, role) for _rec_id, rs_id, role in made]
    zebra = 0
    for rs_id, _role in sessions:
        rows = []
        for _ in range(n_moments):
            text = sentence(rng, rng.randrange(5, 30))
            if rng.random() < 0.001:
                text += " zebra"
                zebra += 1
            rows.append(
                {
                    "study_id": study.id, "recall_session_id": rs_id,
                    "t_ms": rng.randrange(0, DURATION), "text": text, "peaks_ms": [],
                    "codes": [codes[rng.randrange(6)].id] if rng.random() < 0.6 else [],
                    "ratings": {}, "version": 1, "phase": "blind",
                }
            )  # fmt: skip
        s.execute(insert(Moment), rows)
    s.commit()
    moments = s.execute(select(Moment.id, Moment.recall_session_id)).all()
    s.execute(
        insert(ResearcherAnnotation),
        [
            {"study_id": study.id, "moment_id": mid, "user_id": user.id, "codes": [],
             "note": sentence(rng, 12)}
            for mid, _ in moments[::20]
        ],
    )  # fmt: skip
    by_session: dict[int, list[int]] = {}
    for mid, rs_id in moments:
        by_session.setdefault(rs_id, []).append(mid)
    n_said = 0
    for rs_id, role in sessions:
        if role != "client":
            continue
        mids = by_session[rs_id]
        rows = [
            {
                "study_id": study.id, "recall_session_id": rs_id,
                "moment_id": mids[k % len(mids)] if rng.random() < 0.8 else None,
                "start_ms": k * 4000, "end_ms": k * 4000 + 3500,
                "text": sentence(rng, rng.randrange(6, 40)),
            }
            for k in range(n_utterances)
        ]  # fmt: skip
        s.execute(insert(InterviewUtterance), rows)
        n_said += len(rows)
    s.commit()
    s.close()
    return {"study": study.id, "moments": len(moments), "utterances": n_said, "zebra": zebra}


def bench_backend(name: str, root: Path, db_url: str, args: argparse.Namespace) -> list[list[str]]:
    upgrade(db_url)
    app = make_app(root, db_url)
    made = build(app, args.dyads, args.moments, args.utterances)
    rows = []
    for what, query in QUERIES:
        times, found = [], None
        for _ in range(5):
            with app.extensions["ipr_db"].session() as s:
                t0 = time.perf_counter()
                found = search.search(s, made["study"], query)
                times.append((time.perf_counter() - t0) * 1000)
        assert found is not None
        shown = f"{len(found.hits)}{'+' if found.more else ''}"
        rows.append(
            [name, f"{what} ({query!r})", f"{statistics.median(times):.0f}", shown,
             f"{made['moments']} moments, {made['utterances']} utterances"]
        )  # fmt: skip
    app.extensions["ipr_db"].dispose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", default="", help="Server URL (a database is made per run)")
    parser.add_argument("--dyads", type=int, default=50)
    parser.add_argument("--moments", type=int, default=100, help="Per participant and recording")
    parser.add_argument("--utterances", type=int, default=300, help="Per client interview")
    args = parser.parse_args()
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "sqlite"
        root.mkdir()
        rows += bench_backend("SQLite", root, f"sqlite:///{root / 'bench.sqlite3'}", args)
        if args.postgres:
            root = Path(tmp) / "postgres"
            root.mkdir()
            with scratch_postgres(args.postgres, "ipr_bench_") as url:
                rows += bench_backend("PostgreSQL", root, url, args)
    print("| database | query | wall ms (median of 5) | moments shown | data |")
    print("|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
