"""Faults across hosts: a worker host dies mid-ingest, a web host dies while participants save,
PostgreSQL and Redis restart under load. See docs/deployment.md for the topology and figures.

Each test prints its measured figures (``pytest -s`` shows them); docs/deployment.md records
them with the command that produced them.
"""

from __future__ import annotations

import concurrent.futures
import http.client as http_client
import json
import re
import signal
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from ipr import auth, jobs, recall, studies
from ipr.db import Database
from ipr.models import Clip, Job, Moment, Recording
from tests.conftest import make_video
from tests.multihost.topology import Topology

pytestmark = [pytest.mark.multihost, pytest.mark.xdist_group("multihost")]

RETRYABLE = {502, 503, 504}
# a save still unanswered after this is tried again, as the participant page's outbox does
# (static/js/recall.js SAVE_TIMEOUT_MS): a request in flight to a host that lost power is
# never answered, and nginx would wait for it for its proxy_read_timeout (600 s)
SAVE_TIMEOUT = 15
# a save not acknowledged this long after its first try fails the test (with what it was
# answered) instead of being retried for ever
SAVE_DEADLINE = 120


# --- talking to the hosts (every function here runs on the client host) ----------------------


def http(
    topo: Topology,
    method: str,
    path: str,
    token: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> tuple[int, dict[str, str], Any]:
    """One request through nginx: (status, headers, JSON body or None); errors are statuses."""
    req = urllib.request.Request(
        topo.base_url + path, method=method, data=body,
        headers={"Authorization": f"Bearer {token}", **(headers or {})},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            return resp.status, dict(resp.headers), json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        return exc.code, dict(exc.headers), data


def multipart(path: Path, label: str) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="session_label"\r\n\r\n'
            f'{label}\r\n--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{path.name}"\r\nContent-Type: video/mp4\r\n\r\n'
        ).encode()
        + path.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def upload(topo: Topology, token: str, dyad_id: int, video: Path, label: str) -> tuple:
    body, ctype = multipart(video, label)
    return http(
        topo, "POST", f"/api/v1/dyads/{dyad_id}/recordings", token, body, {"Content-Type": ctype}
    )


def media_range(topo: Topology, email: str, path: str, first: int, last: int) -> tuple:
    """Log in as a researcher through nginx (either web host may answer: they share the secret
    key and the database), then fetch a byte range of a media URL through nginx and straight
    from web1: two (status, headers, body)."""
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(topo.base_url + "/login", timeout=30).read().decode()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode(
        {"csrf_token": csrf, "email": email, "password": "a long password"}
    ).encode()
    opener.open(topo.base_url + "/login", data=form, timeout=30).read()
    ranged = {"Range": f"bytes={first}-{last}"}
    with opener.open(urllib.request.Request(topo.base_url + path, headers=ranged)) as resp:
        through_nginx = resp.status, dict(resp.headers), resp.read()
    web1 = f"http://{topo.hosts['web1'].address}:8000"
    cookies = {"Cookie": "; ".join(f"{c.name}={c.value}" for c in jar), **ranged}
    with urllib.request.urlopen(urllib.request.Request(web1 + path, headers=cookies)) as resp:
        from_web_host = resp.status, dict(resp.headers), resp.read()
    return through_nginx, from_web_host


def in_db(topo: Topology, fn: Callable[[Any], Any]) -> Any:
    """``fn(session)`` against the topology's PostgreSQL, from the client host."""

    def work() -> Any:
        database = Database(topo.db_url)
        try:
            with database.session() as s:
                return fn(s)
        finally:
            database.dispose()

    return topo.in_client(work)


def seed(topo: Topology, name: str) -> dict[str, Any]:
    """A researcher with an API token, a study, a dyad, a ready recording and the client's
    recall session with its invitation token. The names are unique, so a test can run again
    in the same topology."""
    name = f"{name}-{uuid.uuid4().hex[:8]}"

    def make(s: Any) -> dict[str, Any]:
        user = auth.create_user(s, f"{name}@example.org", "a long password")
        _, token = auth.create_api_token(s, user, name)
        study = studies.create_study(s, user, name)
        study.segment_fixed_ms = 2000
        dyad = studies.create_dyad(s, study, user, "01")
        rec = Recording(
            study_id=study.id, dyad_id=dyad.id, session_label="S0",
            storage_key=str(uuid.uuid4()), status="ready", duration_ms=3_000_000,
        )  # fmt: skip
        s.add(rec)
        s.flush()
        rs, rs_token = recall.create_session(
            s, rec, dyad.participant("client"), "self", user, days=14
        )
        s.commit()
        return {
            "email": user.email, "token": token, "dyad_id": dyad.id, "rs_id": rs.id,
            "rs_token": rs_token,
        }  # fmt: skip

    return in_db(topo, make)


def wait_for(what: str, check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def figure(name: str, value: float) -> None:
    print(f"\nFIGURE {name}: {value:.2f} s")


# --- 1. a worker host dies during an ingest ------------------------------------------------------


def test_worker_host_killed_during_ingest_finishes_on_the_other_once(
    hosts: Topology, tmp_path: Path
) -> None:
    s = seed(hosts, "ingest")
    video = make_video(tmp_path / "session.mp4", 12.0)
    status, _, rec = hosts.in_client(upload, hosts, s["token"], s["dyad_id"], video, "S1")
    assert status == 201, rec

    def job_row(db: Any) -> Job | None:
        return db.scalar(select(Job).where(Job.recording_id == rec["id"], Job.kind == "ingest"))

    job = wait_for(
        "a worker to start the ingest",
        lambda: (j := in_db(hosts, job_row)) and j.status == "running" and j.worker and j,
        60,
    )
    victim = job.worker.split(":")[0]
    other = {"work1": "work2", "work2": "work1"}[victim]
    time.sleep(0.5)  # well inside the ingest (it takes seconds)
    hosts.unplug(victim)  # power lost: no goodbye on the network either
    hosts.kill(victim)
    killed_at = time.monotonic()

    def finished(db: Any) -> Job | None:
        row = job_row(db)
        return row if row is not None and row.status in ("done", "failed") else None

    job = wait_for("the other worker to finish the ingest", lambda: in_db(hosts, finished), 120)
    figure("worker host killed -> ingest done on the other", time.monotonic() - killed_at)
    assert (job.status, job.attempts, job.worker.split(":")[0]) == ("done", 2, other)

    def outcome(db: Any) -> tuple:
        mine = (Recording.dyad_id == s["dyad_id"], Recording.session_label == "S1")
        recs = db.scalars(select(Recording).where(*mine)).all()
        ready = [r for r in recs if r.status == "ready"]
        clips = db.execute(
            select(Clip.index, Clip.start_ms, Clip.end_ms)
            .where(Clip.recording_id == rec["id"])
            .order_by(Clip.index)
        ).all()
        ingest_jobs = select(Job).where(Job.recording_id == rec["id"], Job.kind == "ingest")
        n_jobs = len(db.scalars(ingest_jobs).all())  # (its figures job is another kind)
        return [r.id for r in ready], [tuple(c) for c in clips], n_jobs, ready[0].storage_key

    ready, clips, n_jobs, key = in_db(hosts, outcome)
    assert ready == [rec["id"]] and n_jobs == 1
    # 12 s in clips of 2 s (numbered from 1), once each: nothing of the dead worker's attempt
    assert clips == [(i + 1, 2000 * i, 2000 * (i + 1)) for i in range(6)]
    clip_files = sorted(p.name for p in (hosts.media / key / "derived" / "clips").glob("*.mp4"))
    assert clip_files == [f"{i + 1:03d}.mp4" for i in range(6)]

    # the playable copy the surviving worker wrote to the shared folder, served by nginx itself
    # (X-Accel-Redirect: the web host answers with headers only) after a web host's check
    playable = (hosts.media / key / "derived" / "playable.mp4").read_bytes()
    (status, headers, body), (web_status, web_headers, web_body) = hosts.in_client(
        media_range, hosts, s["email"], f"/recordings/{rec['id']}/media/playable.mp4",
        0, 1023,
    )  # fmt: skip
    assert (status, headers["Content-Range"]) == (206, f"bytes 0-1023/{len(playable)}")
    assert body == playable[:1024]
    assert "X-Accel-Redirect" not in headers
    hand_off = f"/protected-media/{key}/derived/playable.mp4"
    assert (web_status, web_headers["X-Accel-Redirect"], web_body) == (200, hand_off, b"")


# --- 2. a web host dies while participants save ---------------------------------------------------


def test_web_host_killed_while_participants_save_nothing_lost_or_doubled(
    hosts: Topology,
) -> None:
    s = seed(hosts, "saves")
    web1 = f"{hosts.hosts['web1'].address}:8000"
    web2 = f"{hosts.hosts['web2'].address}:8000"
    acks: list[tuple[str, int, str, float]] = []  # key, moment id, upstream, when
    retries: list[tuple[str, int | str]] = []
    waits: list[float] = []  # from a save's first try to its acknowledgement
    lock = threading.Lock()
    stop = threading.Event()  # set when the test ends, however: no saver outlives it

    def participant(n: int, count: int) -> None:
        """Saves like the outbox: each moment retried with the same key until acknowledged
        (for at most SAVE_DEADLINE s; each try at most SAVE_TIMEOUT s without an answer)."""
        for i in range(count):
            key = f"p{n}-moment-{i:04d}"
            body = json.dumps({"t_ms": 1000 * (100 * n + i), "text": key}).encode()
            first = time.monotonic()
            answers: list[int | str] = []
            while True:
                if stop.is_set():
                    return
                if time.monotonic() - first > SAVE_DEADLINE:
                    raise AssertionError(
                        f"participant {n}: {key} not acknowledged in {SAVE_DEADLINE} s "
                        f"({len(answers)} tries, last answers {answers[-5:]})"
                    )
                try:
                    status, headers, data = http(
                        hosts, "POST", f"/api/v1/recall-sessions/{s['rs_id']}/moments",
                        s["rs_token"], body,
                        {"Content-Type": "application/json", "Idempotency-Key": key},
                        timeout=SAVE_TIMEOUT,
                    )  # fmt: skip
                except (OSError, http_client.HTTPException) as exc:  # reset, refused, cut
                    status, headers, data = type(exc).__name__, {}, None
                answers.append(status)
                if status in (200, 201):
                    with lock:
                        # $upstream_addr lists every host tried; the last one answered
                        answered = headers["X-Upstream"].split(", ")[-1]
                        acks.append((key, data["id"], answered, time.monotonic()))
                        waits.append(time.monotonic() - first)
                    break
                assert status in RETRYABLE or isinstance(status, str), (status, data)
                with lock:
                    retries.append((key, status))
                time.sleep(0.2)

    futures = [hosts.client.submit(participant, n, 30) for n in (1, 2)]
    try:
        wait_for("saves before the fault", lambda: len(acks) >= 10, 60)
        unplugged_at = time.monotonic()
        hosts.unplug("web1")
        hosts.kill("web1")
        killed_at = time.monotonic()
        _, pending = concurrent.futures.wait(futures, timeout=2 * SAVE_DEADLINE)
        assert not pending, (
            f"savers still busy after {2 * SAVE_DEADLINE} s: {len(acks)} of 60 saves "
            f"acknowledged, {len(retries)} retries\n{hosts.log_tails()}"
        )
        for f in futures:
            f.result()  # a saver's own failure, with its message
    finally:
        stop.set()

    keys = sorted(k for k, *_ in acks)
    assert keys == sorted(f"p{n}-moment-{i:04d}" for n in (1, 2) for i in range(30))
    before = {up for _, _, up, t in acks if t < unplugged_at}
    after = {up for _, _, up, t in acks if t > killed_at + 1}  # (1 s: answers still in hand)
    assert before == {web1, web2}  # nginx shared the saves between both web hosts
    assert after == {web2}  # and moved on to the live one
    figure("web host killed -> all saves acknowledged", acks[-1][3] - killed_at)

    def stored(db: Any) -> list[tuple[str, int]]:
        rows = db.execute(
            select(Moment.idempotency_key, Moment.id).where(Moment.recall_session_id == s["rs_id"])
        ).all()
        return sorted((k, i) for k, i in rows)

    # every acknowledged save is there exactly once, with the id the client was given
    assert in_db(hosts, stored) == sorted((k, i) for k, i, _, _ in acks)
    figure("longest save wait across the web host kill", max(waits))
    print(f"retries: {len(retries)} {sorted({str(st) for _, st in retries})}")


# --- 3. PostgreSQL and Redis restart under load -----------------------------------------------


class Load:
    """A participant saving and listing moments through nginx without pause, every answer kept."""

    def __init__(self, topo: Topology, s: dict[str, Any]) -> None:
        self.topo, self.s = topo, s
        self.answers: list[tuple[float, int | str, str | None]] = []  # when, status, Retry-After
        self.acked: dict[str, int] = {}
        self.stop = threading.Event()
        self.future = topo.client.submit(self.run)

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            key = f"load-{uuid.uuid4().hex[:12]}"
            body = json.dumps({"t_ms": 10 * i, "text": key}).encode()
            i += 1
            while not self.stop.is_set():  # the outbox: same key until acknowledged
                status, headers, data = self.request("POST", body, key)
                if status in (200, 201):
                    self.acked[key] = data["id"]
                    break
                time.sleep(0.1)
            self.request("GET", None, None)

    def request(self, method: str, body: bytes | None, key: str | None) -> tuple:
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Idempotency-Key"] = key
        try:
            status, h, data = http(
                self.topo, method, f"/api/v1/recall-sessions/{self.s['rs_id']}/moments",
                self.s["rs_token"], body, headers, timeout=10,
            )  # fmt: skip
        except OSError as exc:
            status, h, data = type(exc).__name__, {}, None
        self.answers.append((time.monotonic(), status, h.get("Retry-After")))
        return status, h, data

    def first_ok_after(self, t: float) -> float:
        return wait_for(
            "a 2xx answer",
            lambda: next((w for w, st, _ in list(self.answers) if w > t and st in (200, 201)), 0),
            60,
        )

    def finish(self) -> None:
        self.stop.set()
        self.future.result(timeout=60)


def test_postgres_and_redis_restart_under_load(hosts: Topology, tmp_path: Path) -> None:
    s = seed(hosts, "restarts")
    load = Load(hosts, s)
    try:
        # PostgreSQL: a fast shutdown (what `pg_ctl restart -m fast` does), 2 s down, started again
        wait_for("saves under load", lambda: len(load.acked) >= 5, 30)
        t_stop = time.monotonic()
        hosts.kill("pg", signal.SIGINT)
        time.sleep(2)
        hosts.start("pg")
        hosts.wait_postgres()
        t_ready = time.monotonic()
        load.first_ok_after(t_ready)
        answers = [a for a in list(load.answers) if a[0] > t_stop]
        bad = [(w, st, ra) for w, st, ra in answers if st not in (200, 201)]
        assert bad, "no request was answered while PostgreSQL was down"
        # meanwhile only 503 with Retry-After, and 2xx again by itself once it is back
        assert {(st, ra) for _, st, ra in bad} == {(503, "2")}
        t_ok = next(w for w, st, _ in answers if w > bad[-1][0] and st in (200, 201))
        figure("PostgreSQL down (fast shutdown -> accepting queries)", t_ready - t_stop)
        figure("clients saw 503 (first 503 -> first 2xx after)", t_ok - bad[0][0])
        figure("PostgreSQL ready -> first 2xx through nginx", t_ok - t_ready)
        wait_for("saves after PostgreSQL is back", lambda: len(load.acked) >= 10, 60)

        # Redis, without persistence: a job queued before the restart must still run. The
        # workers are stopped first so it stays queued, and come back while Redis is down.
        hosts.kill("work1", signal.SIGTERM)
        hosts.kill("work2", signal.SIGTERM)
        first = make_video(tmp_path / "before.mp4", 2.0)
        second = make_video(tmp_path / "during.mp4", 3.0)
        status, _, rec_a = hosts.in_client(upload, hosts, s["token"], s["dyad_id"], first, "A")
        assert (status, rec_a["status"]) == (201, "queued")
        huey = hosts.in_client(queue_view, hosts)
        # the ingest waits on the queue (beside figures jobs of earlier recordings, if any)
        assert job_of(hosts, rec_a["id"]).id in hosts.in_client(jobs.queued_job_ids, huey)
        acked_before = len(load.acked)
        t_redis_down = time.monotonic()
        hosts.kill("redis")
        hosts.start("work1")
        hosts.start("work2")
        status, headers, data = hosts.in_client(
            upload, hosts, s["token"], s["dyad_id"], second, "B"
        )
        assert (status, headers["Retry-After"], data["error"]["code"]) == (503, "2", "unavailable")
        time.sleep(1)
        hosts.start("redis")
        hosts.wait_port("redis", 6379)
        t_redis_up = time.monotonic()
        assert hosts.in_client(jobs.queued_job_ids, huey) == set()  # the restart lost it
        # saves never needed Redis: they went on the whole time
        assert len(load.acked) > acked_before
        assert not [st for w, st, _ in list(load.answers) if w > t_redis_down and st != 200 and
                    st != 201]  # fmt: skip

        def both_ready(db: Any) -> dict[str, str] | None:
            recs = db.scalars(select(Recording).where(Recording.dyad_id == s["dyad_id"])).all()
            got = {r.session_label: r.status for r in recs if r.session_label in ("A", "B")}
            return got if got == {"A": "ready", "B": "ready"} else None

        wait_for("both queued recordings to be processed", lambda: in_db(hosts, both_ready), 90)
        figure("Redis up -> both queued ingests done", time.monotonic() - t_redis_up)

        def job_list(db: Any) -> list[tuple[str, str, int]]:
            rows = db.execute(
                select(Recording.session_label, Job.status, Job.attempts)
                .join(Job, Job.recording_id == Recording.id)
                .where(Recording.dyad_id == s["dyad_id"], Job.kind == "ingest")
                .order_by(Recording.session_label)
            ).all()
            return [tuple(r) for r in rows]

        # each ingest ran once: one job per recording, claimed once (figures jobs aside)
        assert in_db(hosts, job_list) == [("A", "done", 1), ("B", "done", 1)]
    finally:
        load.finish()

    def stored(db: Any) -> dict[str, int]:
        rows = db.execute(
            select(Moment.idempotency_key, Moment.id).where(Moment.recall_session_id == s["rs_id"])
        ).all()
        return dict(rows)

    # every acknowledged save is stored once; no save got lost in either restart
    assert in_db(hosts, stored) == load.acked


def queue_view(topo: Topology) -> Any:
    """The workers' queue as the app sees it (a Huey on the topology's Redis)."""
    return jobs.make_huey({"REDIS_URL": topo.redis_url}, topo.folder / "instance" / "client")


def job_of(topo: Topology, recording_id: int) -> Job:
    ingest = select(Job).where(Job.recording_id == recording_id, Job.kind == "ingest")
    return in_db(topo, lambda db: db.scalar(ingest))
