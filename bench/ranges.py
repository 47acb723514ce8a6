"""Benchmark: random 1 MiB range requests and whole-file downloads, app vs nginx, same run.

Run from the repository root (needs nginx and wrk: `apt-get install -y nginx wrk`):

    .venv/bin/python bench/ranges.py [--gib 1] [--seconds 10] [--connections 8]

It writes a ~1 GB file of random bytes as a ready recording's playable copy, starts gunicorn
(``--workers``, one per CPU, × ``--threads``; sendfile on) and a private nginx built from the
server block in docs/nginx.md (TLS lines dropped, ports and folders substituted, plus one
``/direct/`` location that serves the recordings folder without the app, as the baseline).
Then wrk, bounded in threads, connections and time, on loopback, measures:

- nginx direct: ``/direct/<key>/derived/playable.mp4``, no app involved;
- app: the media URL answered by gunicorn itself (ipr/web/ranges.py), through the nginx proxy;
- app direct: the same, wrk talking to gunicorn without nginx;
- X-Accel-Redirect: the media URL through nginx, with the app restarted with
  IPR_X_ACCEL_REDIRECT so it checks permission and nginx sends the bytes;

for random 1 MiB ranges (a Lua script) and for whole-file downloads, and prints MB/s and the
ratio to nginx direct. Every target is measured in each of ``--rounds`` rounds (the machine is
shared and noisy); the verdict uses the median ratio. Targets: app ≥ 0.25×, X-Accel ≥ 0.45×
(ranges); whole file ≥ 0.9×.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from upload_memory import (  # noqa: E402
    MIB,
    Env,
    free_port,
    login,
    make_env,
    start_gunicorn,
    stop,
)

ROOT = Path(__file__).resolve().parents[1]

LUA = """
local size = tonumber(os.getenv("RANGE_FILE_SIZE"))
local span = 1048576
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
function init(args)
  math.randomseed(os.time() * 1000 + id)
end
function request()
  local h = {}
  for k, v in pairs(wrk.headers) do h[k] = v end
  local s = math.random(0, size - span)
  h["Range"] = "bytes=" .. s .. "-" .. (s + span - 1)
  return wrk.format(nil, nil, h)
end
"""


def nginx_conf(env: Env, port: int, app_port: int) -> str:
    """The docs/nginx.md server block, made runnable here, plus the bench's baseline location."""
    doc = (ROOT / "docs" / "nginx.md").read_text()
    block = re.search(r"```nginx\n(.*?)```", doc, re.S).group(1)
    lines = [ln for ln in block.splitlines() if not ln.rstrip().endswith("# TLS")]
    block = "\n".join(lines)
    block = block.replace("server 127.0.0.1:8000;", f"server 127.0.0.1:{app_port};")
    block = block.replace("/srv/ipr/recordings/", f"{env.recordings}/")
    block = block.replace("/srv/ipr/static/", f"{ROOT / 'static'}/")
    block = block.replace("server_name ipr.example.org;", f"listen 127.0.0.1:{port};")
    if f"listen 127.0.0.1:{port};" not in block:
        raise RuntimeError("docs/nginx.md changed: server_name ipr.example.org; not found")
    baseline = f"""
    location /direct/ {{
        alias {env.recordings}/;
    }}
}}"""
    block = block.rstrip()[:-1].rstrip() + "\n" + baseline
    run = env.folder / "nginx"
    run.mkdir(exist_ok=True)
    temp = " ".join(
        f"{kind}_temp_path {run / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""
worker_processes auto;
pid {run / "nginx.pid"};
error_log {run / "error.log"} warn;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    access_log off;
    {temp}
{block}
}}
"""


def wrk(
    url: str, cookie: str, seconds: int, connections: int, script: Path | None, env: dict
) -> dict:
    cmd = ["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--timeout", "30s"]
    cmd += ["-H", f"Cookie: {cookie}"]
    if script:
        cmd += ["-s", str(script)]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, env={**os.environ, **env})
    text = out.stdout
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed: {out.stderr}")
    transfer = re.search(r"Transfer/sec:\s+([\d.]+)([KMG]?B)", text)
    requests = re.search(r"Requests/sec:\s+([\d.]+)", text)
    scale = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors = re.search(r"Socket errors: (.*)", text)
    return {
        "MBps": float(transfer.group(1)) * scale[transfer.group(2)] / 1e6 if transfer else 0.0,
        "rps": float(requests.group(1)) if requests else 0.0,
        "bad": int(bad.group(1)) if bad else 0,
        "errors": errors.group(1) if errors else "",
    }


def check(url: str, cookie: str, size: int, ranged: bool) -> None:
    """One request by hand: the right status and length, so wrk measures the real thing."""
    headers = {"Cookie": cookie}
    if ranged:
        headers["Range"] = "bytes=1000-1049575"
    req = urllib.request.Request(url, headers=headers, method="HEAD" if not ranged else "GET")
    with urllib.request.urlopen(req) as resp:
        body = resp.read()
        want = (206, 1048576) if ranged else (200, size)
        got = (resp.status, len(body) if ranged else int(resp.headers["Content-Length"]))
        if got != want:
            raise RuntimeError(f"{url}: expected {want}, got {got}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--rounds", type=int, default=3, help="repeat every target; median ratio")
    parser.add_argument(
        "--threads", type=int, default=4, help="gunicorn threads per worker (1: sync workers)"
    )
    parser.add_argument("--whole-connections", type=int, default=2)
    args = parser.parse_args()
    for tool in ("nginx", "wrk"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            sys.exit(f"{tool} is missing: apt-get install -y nginx wrk")
    nginx_bin = shutil.which("nginx") or "/usr/sbin/nginx"
    folder = Path(tempfile.mkdtemp(prefix="ipr-bench-ranges-"))
    folder.chmod(0o755)  # nginx workers run as another user (www-data) when started as root
    env = make_env(folder)
    nginx_proc: subprocess.Popen[bytes] | None = None
    try:
        size = int(args.gib * 1024**3)
        key = _ready_recording(env, size)
        rec_id = 1
        app_port, port = free_port(), free_port()
        conf = folder / "nginx.conf"
        conf.write_text(nginx_conf(env, port, app_port))
        nginx_proc = subprocess.Popen([nginx_bin, "-c", str(conf), "-g", "daemon off;"])
        time.sleep(0.5)
        gun_args = ["-w", str(args.workers), "--threads", str(args.threads), "--timeout", "120"]
        media = f"/recordings/{rec_id}/media/playable.mp4"
        targets = {
            "nginx direct": f"http://127.0.0.1:{port}/direct/{key}/derived/playable.mp4",
            "app (gunicorn behind nginx)": f"http://127.0.0.1:{port}{media}",
            "app (gunicorn, no nginx)": f"http://127.0.0.1:{app_port}{media}",
        }
        accel = "X-Accel-Redirect (app checks, nginx sends)"
        lua = folder / "ranges.lua"
        lua.write_text(LUA)
        wrk_env = {"RANGE_FILE_SIZE": str(size)}
        rounds: list[dict[str, dict[str, dict]]] = []
        cookie = ""

        def measure(results: dict, name: str, url: str) -> None:
            check(url, cookie, size, ranged=True)
            check(url, cookie, size, ranged=False)
            wrk(url, cookie, 2, args.connections, lua, wrk_env)  # warm the page cache
            results["ranges"][name] = wrk(url, cookie, args.seconds, args.connections, lua, wrk_env)
            results["whole"][name] = wrk(
                url, cookie, args.seconds, args.whole_connections, None, wrk_env
            )

        for n in range(args.rounds):
            results: dict[str, dict[str, dict]] = {"ranges": {}, "whole": {}}
            start_gunicorn(env, app_port, gun_args, {})
            if not cookie:
                cookie, _ = login(f"http://127.0.0.1:{app_port}", env.email)
            for name, url in targets.items():
                measure(results, name, url)
            stop(env)
            start_gunicorn(env, app_port, gun_args, {"IPR_X_ACCEL_REDIRECT": "/protected-media/"})
            measure(results, accel, f"http://127.0.0.1:{port}{media}")
            stop(env)
            rounds.append(results)
            print(f"round {n + 1}/{args.rounds} done, load average {os.getloadavg()[0]:.1f}")
        _report(rounds, size, args)
    finally:
        stop(env)
        if nginx_proc is not None:
            nginx_proc.terminate()
            nginx_proc.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


def _ready_recording(env: Env, size: int) -> str:
    from ipr.db import Database
    from ipr.models import Recording
    from ipr.storage import Storage

    storage = Storage(env.recordings)
    key = storage.new_key()
    out = storage.derived_dir(key)
    out.mkdir(parents=True)
    block = os.urandom(MIB)
    with open(out / "playable.mp4", "wb") as fh:
        for i in range(size // MIB):
            fh.write(i.to_bytes(8, "big") + block[8:])
    database = Database(env.db_url)
    with database.session() as db:
        db.add(
            Recording(
                study_id=env.study_id,
                dyad_id=env.dyad_id,
                session_label="Bench",
                storage_key=key,
                original_name="bench.mp4",
                size_bytes=size,
                status="ready",
            )
        )
        db.commit()
    database.dispose()
    return key


def _report(rounds: list[dict], size: int, args: argparse.Namespace) -> None:
    """Each round's figures, then per target the median ratio to nginx direct over the rounds."""
    print(
        f"file {size / 1e9:.2f} GB; wrk -t2, {args.seconds} s per run; ranges: "
        f"{args.connections} connections, whole file: {args.whole_connections}; "
        f"gunicorn {args.workers} workers x {args.threads} threads; {os.cpu_count()} CPUs; "
        f"{len(rounds)} round(s)"
    )
    targets = {"ranges": 0.25, "whole": 0.9}
    for kind in ("ranges", "whole"):
        print(f"\n{'random 1 MiB ranges' if kind == 'ranges' else 'whole-file downloads'}")
        for name in rounds[0][kind]:
            ratios, cells = [], []
            for results in rounds:
                r = results[kind][name]
                base = results[kind]["nginx direct"]["MBps"]
                ratios.append(r["MBps"] / base if base else 0.0)
                bad = f" non-2xx {r['bad']}" if r["bad"] else ""
                errs = f" socket errors: {r['errors']}" if r["errors"] else ""
                cells.append(f"{r['MBps']:6.0f} MB/s {r['rps']:7.1f}/s{bad}{errs}")
            median = statistics.median(ratios)
            goal = ""
            if name != "nginx direct":
                want = 0.45 if kind == "ranges" and name.startswith("X-Accel") else targets[kind]
                goal = f"target >= {want:.2f}x {'PASS' if median >= want else 'FAIL'}"
            each = " ".join(f"{x:.2f}" for x in ratios)
            print(f"  {name:45s} median {median:5.2f}x (rounds: {each}) {goal}")
            for cell in cells:
                print(f"      {cell}")


if __name__ == "__main__":
    main()
