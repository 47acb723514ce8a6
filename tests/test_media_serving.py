"""Media URLs: permission first, then exact HTTP Range behaviour, served by seeking."""

from __future__ import annotations

import datetime as dt
import email
import http.cookiejar
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from werkzeug.http import http_date
from werkzeug.wsgi import FileWrapper

from ipr.models import Membership, Recording
from ipr.web import ranges
from tests.conftest import MEDIA_DATA as DATA
from tests.conftest import PASSWORD, ROOT, Web

URLS = [
    "media/playable.mp4",
    "media/sprite.jpg",
    "media/waveform.json",
    "media/analysis.json",
    "clips/1.mp4",
    "clips/1.jpg",
    "clips/1/download",
]


def url(rec: Recording, rest: str = "media/playable.mp4") -> str:
    return f"/recordings/{rec.id}/{rest}"


def get(web: Web, path: str, **headers):
    return web.client.get(path, headers=headers)


def test_whole_file_and_headers(owner_web, rec) -> None:
    resp = get(owner_web, url(rec))
    assert resp.status_code == 200
    assert resp.get_data() == DATA
    assert resp.headers["Content-Length"] == "1000"
    assert resp.headers["Content-Type"] == "video/mp4"
    assert resp.headers["Accept-Ranges"] == "bytes"
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert re.fullmatch(r'"[0-9a-f]+-3e8-[0-9a-f]+"', resp.headers["ETag"])
    assert resp.headers["Last-Modified"].endswith(" GMT")
    assert "Content-Range" not in resp.headers


SINGLE = [
    ("bytes=0-99", 0, 99),
    ("bytes=-100", 900, 999),
    ("bytes=100-", 100, 999),
    ("bytes=990-5000", 990, 999),
    ("bytes=-5000", 0, 999),
    ("bytes=999-999", 999, 999),
    ("BYTES = 5-9", 5, 9),
]


def test_single_range(owner_web, rec) -> None:
    for header, start, end in SINGLE:
        resp = get(owner_web, url(rec), Range=header)
        assert resp.status_code == 206, header
        assert resp.headers["Content-Range"] == f"bytes {start}-{end}/1000"
        assert resp.headers["Content-Length"] == str(end - start + 1)
        assert resp.get_data() == DATA[start : end + 1]
        assert resp.headers["Cache-Control"] == "no-store"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"


def test_unsatisfiable_is_416_with_size(owner_web, rec) -> None:
    for header in ("bytes=1000-1100", "bytes=1000-", "bytes=-0", "bytes=5000-6000,2000-"):
        resp = get(owner_web, url(rec), Range=header)
        assert resp.status_code == 416, header
        assert resp.headers["Content-Range"] == "bytes */1000"
        assert resp.get_data() == b""


def test_malformed_range_is_ignored(owner_web, rec) -> None:
    for header in (
        "bytes=abc",
        "bytes=10-5",
        "items=0-5",
        "bytes=",
        "bytes=-",
        "0-5",
        "bytes=1-2-3",
    ):
        resp = get(owner_web, url(rec), Range=header)
        assert resp.status_code == 200, header
        assert resp.get_data() == DATA


def test_two_ranges_are_multipart(owner_web, rec) -> None:
    resp = get(owner_web, url(rec), Range="bytes=0-9, 500-504,-3")
    assert resp.status_code == 206
    assert resp.mimetype == "multipart/byteranges"
    body = resp.get_data()
    assert resp.headers["Content-Length"] == str(len(body))
    message = email.message_from_bytes(
        b"Content-Type: " + resp.headers["Content-Type"].encode() + b"\r\n\r\n" + body
    )
    parts = message.get_payload()
    assert [p["Content-Range"] for p in parts] == [
        "bytes 0-9/1000",
        "bytes 500-504/1000",
        "bytes 997-999/1000",
    ]
    assert [p["Content-Type"] for p in parts] == ["video/mp4"] * 3
    assert [p.get_payload(decode=True) for p in parts] == [
        DATA[0:10],
        DATA[500:505],
        DATA[997:1000],
    ]


def test_too_many_ranges_is_416(owner_web, rec) -> None:
    sixteen = ",".join(f"{i * 10}-{i * 10 + 1}" for i in range(ranges.MAX_RANGES))
    assert get(owner_web, url(rec), Range=f"bytes={sixteen}").status_code == 206
    resp = get(owner_web, url(rec), Range=f"bytes={sixteen},900-901")
    assert resp.status_code == 416
    assert resp.headers["Content-Range"] == "bytes */1000"


def test_if_range(owner_web, rec, app) -> None:
    first = get(owner_web, url(rec))
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    match = get(owner_web, url(rec), Range="bytes=0-9", **{"If-Range": etag})
    assert (match.status_code, match.get_data()) == (206, DATA[:10])
    by_date = get(owner_web, url(rec), Range="bytes=0-9", **{"If-Range": modified})
    assert by_date.status_code == 206
    for stale in ('"other"', "W/" + etag, http_date(dt.datetime(2001, 1, 1, tzinfo=dt.UTC))):
        resp = get(owner_web, url(rec), Range="bytes=0-9", **{"If-Range": stale})
        assert (resp.status_code, resp.get_data()) == (200, DATA)
    # The file is replaced: the old ETag no longer matches, so the client gets the new whole file.
    path = app.extensions["ipr_storage"].derived(rec.storage_key, "playable.mp4")
    path.write_bytes(DATA[::-1])
    resp = get(owner_web, url(rec), Range="bytes=0-9", **{"If-Range": etag})
    assert (resp.status_code, resp.get_data()) == (200, DATA[::-1])


def test_head(owner_web, rec) -> None:
    resp = owner_web.client.head(url(rec))
    assert (resp.status_code, resp.get_data()) == (200, b"")
    assert resp.headers["Content-Length"] == "1000"
    resp = owner_web.client.head(url(rec), headers={"Range": "bytes=10-19"})
    assert (resp.status_code, resp.get_data()) == (206, b"")
    assert resp.headers["Content-Range"] == "bytes 10-19/1000"


def test_file_wrapper_path_reads_only_the_range(owner_web, rec) -> None:
    """With a server's ``wsgi.file_wrapper`` the windowed file stops at the range end."""
    resp = owner_web.client.get(
        url(rec),
        headers={"Range": "bytes=100-199"},
        environ_overrides={"wsgi.file_wrapper": FileWrapper},
    )
    assert (resp.status_code, resp.get_data()) == (206, DATA[100:200])


def test_every_media_url_for_member_viewer_and_stranger(app, owner_web, rec, make_user, db) -> None:
    viewer, stranger = make_user("viewer@example.org"), make_user("stranger@example.org")
    db.add(Membership(study_id=rec.study_id, user_id=viewer.id, role="viewer"))
    db.commit()
    viewer_web, stranger_web = Web(app), Web(app)
    viewer_web.login(viewer.email)
    stranger_web.login(stranger.email)
    for rest in URLS:
        expected = DATA[:10] if rest == "clips/1.jpg" else DATA
        for web in (owner_web, viewer_web):
            resp = get(web, url(rec, rest))
            assert (resp.status_code, resp.get_data()) == (200, expected), rest
        resp = get(stranger_web, url(rec, rest), Range="bytes=0-9")
        assert resp.status_code == 404, rest
        assert DATA[:10] not in resp.get_data()
    assert get(Web(app), url(rec)).status_code == 302  # logged out: to the login page


def test_download_name_and_types(owner_web, rec) -> None:
    resp = get(owner_web, url(rec, "clips/1/download"))
    assert resp.headers["Content-Disposition"] == 'attachment; filename="05_Session-3_clip001.mp4"'
    assert resp.headers["Content-Type"] == "video/mp4"
    assert get(owner_web, url(rec, "clips/1.jpg")).headers["Content-Type"] == "image/jpeg"
    assert get(owner_web, url(rec, "media/sprite.jpg")).headers["Content-Type"] == "image/jpeg"
    waveform = get(owner_web, url(rec, "media/waveform.json"))
    assert waveform.headers["Content-Type"] == "application/json"
    assert "Content-Disposition" not in get(owner_web, url(rec)).headers


def test_missing_or_not_ready_is_404(owner_web, rec, db) -> None:
    for rest in ("clips/2.mp4", "clips/0.mp4", "clips/2/download", "media/source.mp4",
                 "media/..%2Fsource.mp4", "clips/1.png"):  # fmt: skip
        assert get(owner_web, url(rec, rest)).status_code == 404, rest
    assert get(owner_web, f"/recordings/{rec.id + 1}/media/playable.mp4").status_code == 404
    rec = db.get(Recording, rec.id)
    rec.status = "processing"
    db.commit()
    assert get(owner_web, url(rec)).status_code == 404


def test_x_accel_redirect_hand_off(app, owner_web, rec, make_user) -> None:
    app.config["X_ACCEL_REDIRECT"] = "/protected-media/"
    resp = get(owner_web, url(rec), Range="bytes=0-9")
    assert resp.status_code == 200
    assert resp.headers["X-Accel-Redirect"] == (
        f"/protected-media/{rec.storage_key}/derived/playable.mp4"
    )
    assert resp.get_data() == b""
    assert resp.headers["Content-Type"] == "video/mp4"
    assert resp.headers["Cache-Control"] == "no-store"
    download = get(owner_web, url(rec, "clips/1/download"))
    assert download.headers["X-Accel-Redirect"].endswith(f"{rec.storage_key}/derived/clips/001.mp4")
    assert download.headers["Content-Disposition"].endswith('filename="05_Session-3_clip001.mp4"')
    stranger = make_user("stranger@example.org")
    stranger_web = Web(app)
    stranger_web.login(stranger.email)
    for rest in URLS:
        resp = get(stranger_web, url(rec, rest))
        assert resp.status_code == 404 and "X-Accel-Redirect" not in resp.headers


# --- seeks, not reads ---------------------------------------------------------------------------

GB = 1_000_000_000
DEEP = "bytes=1000000000-1000000099"


def rchar(pid: int | str = "self") -> int:
    """Bytes this process has read through read()/pread()/sendfile() of any kind, per the kernel."""
    text = Path(f"/proc/{pid}/io").read_text()
    return int(re.search(r"^rchar: (\d+)$", text, re.M).group(1))


@pytest.fixture
def deep(rec, app) -> Path:
    """The playable copy replaced by a sparse 2 GB file with 100 "Z" bytes at 1 GB.

    Bytes before *and after* the range: reading up to the range, or on to the end of the file
    after it, would both show in the count.
    """
    path = app.extensions["ipr_storage"].derived(rec.storage_key, "playable.mp4")
    with open(path, "r+b") as fh:
        fh.truncate(2 * GB)
        fh.seek(GB)
        fh.write(b"Z" * 100)
    return path


@pytest.mark.parametrize("wrapper", [None, FileWrapper], ids=["generator", "file_wrapper"])
def test_deep_range_is_reached_by_seeking_dev_server(owner_web, rec, deep, wrapper) -> None:
    """A range 1 GB into the file costs ~100 bytes of reading, not 1 GB.

    ``rchar`` in /proc/self/io counts every byte the process reads. The request runs in this
    process (the Flask test client, with and without the server's ``wsgi.file_wrapper``), so
    the growth around it bounds what the view read from the file. The control asks for 8 MiB
    and must see at least that much, proving the counter sees the file reads at all.
    """
    overrides = {"wsgi.file_wrapper": wrapper} if wrapper else {}

    def read_cost(header: str) -> tuple[int, bytes]:
        before = rchar()
        resp = owner_web.client.get(
            url(rec), headers={"Range": header}, environ_overrides=overrides
        )
        body = resp.get_data()
        return rchar() - before, body

    cost, body = read_cost(DEEP)
    assert body == b"Z" * 100
    assert cost < 256 * 1024, f"read {cost} bytes to serve 100"
    control, body = read_cost("bytes=0-8388607")
    assert len(body) == 8 * 1024 * 1024 and control >= 8 * 1024 * 1024


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("sendfile", [True, False], ids=["sendfile", "no-sendfile"])
def test_deep_range_is_reached_by_seeking_under_gunicorn(
    app, owner, rec, deep, tmp_path, sendfile
) -> None:
    """The same proof under the production server, a real gunicorn (sync worker) subprocess.

    The trap: Werkzeug's ``send_file`` wraps gunicorn's non-seekable ``wsgi.file_wrapper`` and
    reaches a range by reading from byte 0. Here the worker's ``rchar`` (/proc/<worker>/io,
    which also counts ``sendfile``) may grow by the request, the session lookup and the 100
    bytes only. Run with gunicorn's sendfile on (zero-copy path) and off (it iterates the
    wrapper, which must stop at the range end rather than read on to the end of the file).
    """
    port = _free_port()
    env = {
        **os.environ,
        "IPR_DATABASE_URL": app.config["DATABASE_URL"],
        "IPR_RECORDINGS_DIR": app.config["RECORDINGS_DIR"],
        "IPR_INSTANCE_PATH": str(tmp_path / "gunicorn-instance"),
        "IPR_SECRET_KEY": "gunicorn-test-key",
    }
    cmd = [sys.executable, "-m", "gunicorn", "-w", "1", "-b", f"127.0.0.1:{port}"]
    cmd += [] if sendfile else ["--no-sendfile"]
    proc = subprocess.Popen(
        [*cmd, "app:create_app()"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                page = opener.open(f"{base}/login", timeout=5).read().decode()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        form = urllib.parse.urlencode(
            {"email": owner.email, "password": PASSWORD, "csrf_token": token}
        ).encode()
        opener.open(f"{base}/login", data=form, timeout=10).read()
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert len(children) == 1
        worker = int(children[0])

        def read_cost(header: str) -> tuple[int, int, bytes]:
            req = urllib.request.Request(f"{base}{url(rec)}", headers={"Range": header})
            before = rchar(worker)
            with opener.open(req, timeout=30) as resp:
                status, body = resp.status, resp.read()
            time.sleep(0.05)  # the worker finishes its bookkeeping after the last byte
            return rchar(worker) - before, status, body

        cost, status, body = read_cost(DEEP)
        assert (status, body) == (206, b"Z" * 100)
        assert cost < 256 * 1024, f"gunicorn worker read {cost} bytes to serve 100"
        control, status, body = read_cost("bytes=0-8388607")
        assert status == 206 and len(body) == 8 * 1024 * 1024
        assert control >= 8 * 1024 * 1024
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log = proc.stderr.read().decode() if proc.stderr else ""
        if proc.stderr:
            proc.stderr.close()
    assert "Traceback" not in log and "Error handling request" not in log, log
