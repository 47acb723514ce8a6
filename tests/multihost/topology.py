"""Several hosts on one machine: a Linux network namespace per host on one bridged LAN.

Each host is a network namespace (with its own hostname) holding the processes a real machine
of that role would run: nginx; two web hosts with gunicorn; two worker hosts with
``flask --app app ipr worker``; PostgreSQL and Redis, each started here (initdb into a
temporary folder, a redis-server without persistence), never the machine's own services. The
bridge lives in a namespace of its own, so nothing is added to the machine's network. Every
host mounts the same media folder (the same directory, as a network file system would be).

The test process itself stays outside; code that talks to the hosts runs in a thread that has
joined the client namespace (``Topology.client``), since a network namespace is per thread.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tests.conftest import ROOT

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
SUBNET = "10.88.0"
ADDRESSES = {
    "nginx": 2,
    "web1": 11,
    "web2": 12,
    "work1": 21,
    "work2": 22,
    "pg": 31,
    "redis": 32,
    "client": 100,
}
PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)), None)
HEARTBEAT_SECONDS = 2  # the workers' heartbeat and sweep interval; stale after 4x this


def unavailable_reason() -> str | None:
    """Why the topology cannot be built here, or None."""
    if not sys.platform.startswith("linux"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    for tool in ("ip", "unshare", "runuser", "nginx", "redis-server"):
        if shutil.which(tool) is None:
            return f"{tool} is missing (scripts/setup installs it)"
    if PG_BIN is None or not (PG_BIN / "initdb").exists():
        return "the PostgreSQL server binaries are missing (scripts/setup installs them)"
    probe = f"ipr-probe-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def enter(ns: str) -> None:
    """Move the calling thread (only it) into the network namespace ``ns``."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {ns} failed")
    finally:
        os.close(fd)


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@dataclass
class Host:
    name: str
    ns: str
    address: str
    procs: list[subprocess.Popen] = field(default_factory=list)


class Topology:
    """Build with ``up()``, tear down with ``down()``; start, kill and restart hosts."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.prefix = f"ipr{os.getpid()}"
        self.lan = f"{self.prefix}-lan"
        self.hosts = {
            name: Host(name, f"{self.prefix}-{name}", f"{SUBNET}.{n}")
            for name, n in ADDRESSES.items()
        }
        self.media = folder / "recordings"  # the shared media folder every host mounts
        self.pgdata = Path(tempfile.mkdtemp(prefix="ipr-multihost-pg-"))  # owned by postgres
        self.db_url = f"postgresql+psycopg://postgres@{self.hosts['pg'].address}:5432/ipr"
        self.redis_url = f"redis://{self.hosts['redis'].address}:6379/0"
        self.base_url = f"http://{self.hosts['nginx'].address}"
        self.client = concurrent.futures.ThreadPoolExecutor(
            4, thread_name_prefix="client", initializer=enter, initargs=(self.ns("client"),)
        )

    def ns(self, host: str) -> str:
        return self.hosts[host].ns

    def in_client(self, fn: Callable[..., T], *args: Any, timeout: float = 300) -> T:
        """Run ``fn`` in a thread on the client host; its connections start from there. Fails
        after ``timeout`` s rather than hang (e.g. when stuck work holds the host's threads)."""
        try:
            return self.client.submit(fn, *args).result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            raise AssertionError(
                f"{getattr(fn, '__name__', fn)} on the client host did not finish in {timeout} s"
            ) from None

    # --- network ---------------------------------------------------------------------------

    def up(self) -> None:
        """The namespaces and the LAN, then every service, in dependency order."""
        ip("netns", "add", self.lan)
        ip("-n", self.lan, "link", "add", "br0", "type", "bridge")
        ip("-n", self.lan, "link", "set", "br0", "up")
        for host in self.hosts.values():
            ip("netns", "add", host.ns)
            veth = f"v-{host.name}"
            peer = ("peer", "eth0", "netns", host.ns)
            ip("-n", self.lan, "link", "add", veth, "type", "veth", *peer)
            ip("-n", self.lan, "link", "set", veth, "master", "br0", "up")
            ip("-n", host.ns, "addr", "add", f"{host.address}/24", "dev", "eth0")
            ip("-n", host.ns, "link", "set", "eth0", "up")
            ip("-n", host.ns, "link", "set", "lo", "up")
        self.media.mkdir(parents=True, exist_ok=True)
        self.init_postgres()
        self.start("pg")
        self.start("redis")
        self.wait_postgres()
        self.wait_port("redis", 6379)
        self.create_database()
        for host in ("web1", "web2", "work1", "work2", "nginx"):
            self.start(host)
        for host in ("web1", "web2"):
            self.wait_http(f"http://{self.hosts[host].address}:8000/login")
        self.wait_http(f"{self.base_url}/login")

    def down(self) -> None:
        for host in self.hosts.values():
            self.kill(host.name)
        self.client.shutdown(wait=False, cancel_futures=True)
        for host in self.hosts.values():
            subprocess.run(["ip", "netns", "del", host.ns], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.lan], capture_output=True)
        shutil.rmtree(self.pgdata, ignore_errors=True)

    def unplug(self, host: str) -> None:
        """The host's cable pulled: its address stops answering (no reset, no refusal)."""
        ip("-n", self.ns(host), "link", "set", "eth0", "down")

    def plug(self, host: str) -> None:
        ip("-n", self.ns(host), "link", "set", "eth0", "up")

    # --- processes -------------------------------------------------------------------------

    def env(self, host: str) -> dict[str, str]:
        return {
            "PATH": os.environ["PATH"],
            "LANG": "C.UTF-8",
            "IPR_DATABASE_URL": self.db_url,
            "IPR_REDIS_URL": self.redis_url,
            "IPR_RECORDINGS_DIR": str(self.media),
            "IPR_INSTANCE_PATH": str(self.folder / "instance" / host),
            "IPR_SECRET_KEY": "multihost-" + "k" * 32,
            "IPR_X_ACCEL_REDIRECT": "/protected-media/",
            "IPR_WORKER_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS),
            "IPR_LOG_LEVEL": "WARNING",
        }

    def command(self, host: str) -> list[str]:
        address = self.hosts[host].address
        if host == "pg":
            return [
                "runuser", "-u", "postgres", "--", str(PG_BIN / "postgres"), "-D",
                str(self.pgdata / "data"), "-c", f"listen_addresses={address}",
                "-c", f"unix_socket_directories={self.pgdata}", "-c", "max_connections=100",
                # a client host that lost power never closes its connections: without
                # keepalives its open transaction keeps its row locks for hours (the kernel's
                # default), and every other host waits on them. docs/deployment.md
                "-c", "tcp_keepalives_idle=5", "-c", "tcp_keepalives_interval=2",
                "-c", "tcp_keepalives_count=3",
            ]  # fmt: skip
        if host == "redis":
            return [
                "redis-server", "--bind", address, "--port", "6379", "--save", "",
                "--appendonly", "no", "--protected-mode", "no", "--daemonize", "no",
            ]  # fmt: skip
        if host.startswith("web"):
            return [
                sys.executable, "-m", "gunicorn", "-w", "1", "-k", "gthread", "--threads", "4",
                "-b", f"{address}:8000", "--timeout", "120", "app:create_app()",
            ]  # fmt: skip
        if host.startswith("work"):
            return [sys.executable, "-m", "flask", "--app", "app", "ipr", "worker"]
        if host == "nginx":
            conf = self.folder / "nginx.conf"
            conf.write_text(self.nginx_conf())
            return ["nginx", "-c", str(conf), "-g", "daemon off;"]
        raise ValueError(host)

    def start(self, host: str) -> subprocess.Popen:
        """Start the host's service in its namespace, under the host's own name."""
        h = self.hosts[host]
        log = self.folder / f"{host}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", h.ns, "unshare", "--uts", "sh", "-c",
                 'hostname "$0" && exec "$@"', host, *self.command(host)],
                cwd=ROOT, env=self.env(host), stdout=out, stderr=out, start_new_session=True,
            )  # fmt: skip
        h.procs.append(proc)
        return proc

    def kill(self, host: str, sig: int = signal.SIGKILL) -> None:
        """Every process of the host at once (its session), as when the machine dies."""
        h = self.hosts[host]
        for proc in h.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
        h.procs.clear()

    def alive(self, host: str) -> bool:
        return any(p.poll() is None for p in self.hosts[host].procs)

    def run(self, host: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """A one-off command on a host (e.g. ``flask ipr init-db`` on a web host)."""
        return subprocess.run(
            ["ip", "netns", "exec", self.ns(host), *args],
            cwd=ROOT, env=self.env(host), capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip

    # --- services ----------------------------------------------------------------------------

    def init_postgres(self) -> None:
        shutil.chown(self.pgdata, "postgres", "postgres")
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(PG_BIN / "initdb"), "-D",
             str(self.pgdata / "data"), "--auth=trust", "--no-sync", "-U", "postgres"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        with open(self.pgdata / "data" / "pg_hba.conf", "a") as hba:
            hba.write(f"host all all {SUBNET}.0/24 trust\n")

    def create_database(self) -> None:
        out = self.run(
            "pg", str(PG_BIN / "psql"), "-h", self.hosts["pg"].address, "-U", "postgres",
            "-c", "CREATE DATABASE ipr",
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        out = self.run("web1", sys.executable, "-m", "flask", "--app", "app", "ipr", "init-db")
        assert out.returncode == 0, out.stderr

    def nginx_conf(self) -> str:
        """docs/nginx.md's server block, TLS lines dropped, with both web hosts upstream."""
        doc = (ROOT / "docs" / "nginx.md").read_text()
        block = re.search(r"```nginx\n(.*?)```", doc, re.S).group(1)
        block = "\n".join(ln for ln in block.splitlines() if not ln.rstrip().endswith("# TLS"))
        web = "\n".join(
            f"    server {self.hosts[h].address}:8000 max_fails=1 fail_timeout=10s;"
            for h in ("web1", "web2")
        )
        block = block.replace("    server 127.0.0.1:8000;", web)
        block = block.replace("/srv/ipr/recordings/", f"{self.media}/")
        block = block.replace("/srv/ipr/static/", f"{ROOT / 'static'}/")
        block = block.replace(
            "server_name ipr.example.org;",
            f"listen {self.hosts['nginx'].address}:80;\n"
            # which web host answered (tests only), and a dead host given up on in 1 s
            "    add_header X-Upstream $upstream_addr always;\n"
            "    proxy_connect_timeout 1s;",
        )
        assert "listen " in block and "max_fails" in block, "docs/nginx.md changed shape"
        run = self.folder / "nginx"
        run.mkdir(exist_ok=True)
        temp = " ".join(
            f"{kind}_temp_path {run / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        return f"""
user root;
worker_processes 1;
pid {run / "nginx.pid"};
error_log {run / "error.log"} warn;
events {{ worker_connections 256; }}
http {{
    include /etc/nginx/mime.types;
    access_log off;
    {temp}
{block}
}}
"""

    # --- waiting -----------------------------------------------------------------------------

    def wait_port(self, host: str, port: int, timeout: float = 60) -> float:
        """Seconds until the host accepts TCP connections on ``port``."""
        import socket

        address = self.hosts[host].address

        def attempt() -> float:
            start = time.monotonic()
            while time.monotonic() - start < timeout:
                try:
                    socket.create_connection((address, port), timeout=1).close()
                    return time.monotonic() - start
                except OSError:
                    time.sleep(0.05)
            raise AssertionError(f"{host}:{port} did not come up: {self.log_tail(host)}")

        return self.in_client(attempt)

    def wait_postgres(self, timeout: float = 60) -> float:
        """Seconds until PostgreSQL accepts queries (not just connections: it may be starting)."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            ready = self.run("pg", str(PG_BIN / "pg_isready"), "-q", "-h", self.hosts["pg"].address)
            if ready.returncode == 0:
                return time.monotonic() - start
            time.sleep(0.05)
        raise AssertionError(f"PostgreSQL did not come up: {self.log_tail('pg')}")

    def wait_http(self, url: str, timeout: float = 90) -> None:
        def attempt() -> None:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    urllib.request.urlopen(url, timeout=2).close()
                    return
                except OSError:
                    time.sleep(0.2)
            raise AssertionError(f"{url} did not answer: {self.log_tails()}")

        self.in_client(attempt)

    def log_tail(self, host: str) -> str:
        log = self.folder / f"{host}.log"
        return log.read_text(errors="replace")[-3000:] if log.exists() else ""

    def log_tails(self) -> str:
        return "\n".join(f"--- {h}\n{self.log_tail(h)}" for h in self.hosts)
