"""Benchmark: server time of the timeline page for a 50-minute recording with 1,000 moments.

Run from the repository root: `.venv/bin/python bench/timeline_page.py`. Builds a throw-away
app (SQLite, temporary folders), one 50-minute recording with motion energy at 25 Hz, 500
therapist and 500 client moments (15 % spans with a peak, codes, HAT ratings) and 100 researcher
codings, then times each request through Flask's test client (the whole request: routing,
permission check, queries, matching, figures, template, JSON payload). Target: the page in
under 300 ms. Prints the best of `--repeat` runs; "cold" clears the in-process caches first.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from ipr import auth, recall, studies  # noqa: E402
from ipr import timeline_service as ts  # noqa: E402
from ipr.db import upgrade  # noqa: E402
from ipr.models import Moment, Recording, ResearcherAnnotation  # noqa: E402
from ipr.storage import Storage  # noqa: E402
from tests.conftest import PASSWORD, Web, make_app  # noqa: E402

TARGET_MS = 300
DURATION = 50 * 60 * 1000


def build(root: Path, n_moments: int) -> tuple[Web, int, Path]:
    db_url = f"sqlite:///{root / 'bench.sqlite3'}"
    upgrade(db_url)
    app = make_app(root, db_url)
    rng = random.Random(0)
    s = app.extensions["ipr_db"].session()
    user = auth.create_user(s, "bench@example.org", PASSWORD, "researcher")
    study = studies.create_study(s, user, "Benchmark")
    codes = [
        studies.add_code(s, study, user, {"name": f"Code {k}", "colour": "#336699"})
        for k in range(6)
    ]
    dyad = studies.create_dyad(s, study, user, "01")
    rec = Recording(
        study_id=study.id, dyad_id=dyad.id, session_label="Session 3",
        storage_key=Storage.new_key(), status="ready", duration_ms=DURATION,
        width=640, height=360, fps_num=25, fps_den=1, has_audio=True,
    )  # fmt: skip
    s.add(rec)
    s.commit()
    derived = Storage(app.config["RECORDINGS_DIR"]).derived_dir(rec.storage_key)
    derived.mkdir(parents=True)
    n = DURATION // 40
    noise = np.random.default_rng(0)
    left = np.abs(np.sin(np.arange(n) / 40.0)) + noise.random(n)
    right = np.roll(left, 30) + noise.random(n)
    (derived / "analysis.json").write_text(
        json.dumps(
            {
                "scene_cuts_ms": [600_000, 1_800_000],
                "silences_ms": [[t, t + 1500] for t in range(5000, DURATION, 20_000)],
                "motion_energy": {
                    "rate_hz": 25.0,
                    "left": np.round(left, 4).tolist(),
                    "right": np.round(right, 4).tolist(),
                },
            }
        )
    )
    moment_ids = []
    for role in ("therapist", "client"):
        rs, _ = recall.create_session(s, rec, dyad.participant(role), "researcher", user, days=1)
        rs.status = "submitted"
        for _ in range(n_moments // 2):
            t = rng.randrange(0, DURATION - 60_000)
            span = rng.random() < 0.15
            m = Moment(
                study_id=study.id, recall_session_id=rs.id, t_ms=t,
                end_ms=t + rng.randrange(5000, 40_000) if span else None,
                peaks_ms=[t + 2000] if span else [],
                text="What I felt here, in a sentence or two. " * 3,
                codes=[codes[rng.randrange(6)].id], ratings={"hat": rng.randrange(1, 10)},
            )  # fmt: skip
            s.add(m)
            s.flush()
            moment_ids.append(m.id)
    for mid in rng.sample(moment_ids, 100):
        s.add(
            ResearcherAnnotation(
                study_id=study.id, moment_id=mid, user_id=user.id, codes=[codes[0].id], note="n"
            )
        )
    s.commit()
    rec_id = rec.id
    s.close()
    web = Web(app)
    web.login("bench@example.org")
    return web, rec_id, derived / ts.SYNC_CACHE_NAME


def timed(
    fn: Callable[[], object], repeat: int, before: Callable[[], object] | None = None
) -> float:
    best = float("inf")
    for _ in range(repeat):
        if before:
            before()
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--moments", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        web, rec_id, sync_cache = build(Path(tmp), args.moments)
        page = f"/recordings/{rec_id}/timeline"

        def get(url: str, htmx: bool = False) -> None:
            resp = web.get(url, htmx=htmx)
            assert resp.status_code == 200, (url, resp.status_code)

        def forget_all() -> None:
            ts.clear_caches()
            sync_cache.unlink(missing_ok=True)

        data = f"/recordings/{rec_id}/timeline.json?tolerance_ms=3000"
        cold = ts.clear_caches
        cases = [
            ("page, first view ever (synchrony windows computed)", page, 0, 1, forget_all),
            ("page, after a restart (synchrony read from its file)", page, 0, None, cold),
            ("page, warm", page, 0, None, None),
            ("tolerance change: timeline.json at a new tolerance", data, 0, None, cold),
            ("tolerance change: figures fragment", f"{page}?tolerance_ms=3000", 1, None, None),
            ("chance baseline fragment, first time (1,000 shifts)", f"{page}/chance", 1, 1, cold),
            ("synchrony surrogates, first time (50)", f"{page}/synchrony", 1, 1, forget_all),
        ]  # fmt: skip
        rows = [
            (name, timed(lambda u=url, h=htmx: get(u, bool(h)), repeat or args.repeat, before))
            for name, url, htmx, repeat, before in cases
        ]
        size = len(web.get(page).get_data())
    print(f"{args.moments} moments, 50 minutes, best of {args.repeat} (ms); page {size:,} bytes")
    for name, ms in rows:
        print(f"  {name:<60} {ms:9.1f}")
    warm = rows[2][1]
    verdict = "met" if warm < TARGET_MS else "NOT met"
    print(f"target: page under {TARGET_MS} ms -> warm {warm:.0f} ms ({verdict})")


if __name__ == "__main__":
    main()
