"""End-to-end harness: the real app under gunicorn on a free port, driven by Debian's Chromium.

One server per test session (per xdist worker), with its own database, instance folder and media
folder; tests stay independent by creating researchers and studies with unique names. Each test
gets fresh browser contexts. Every page is watched: a request to any other origin, or an error
on the browser console (CSP violations land there), fails the test, and a failing test leaves a
screenshot of every open page in ``test-artifacts/``.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Request,
    sync_playwright,
)
from sqlalchemy import select

from ipr import auth
from ipr.db import Database
from ipr.demo import STUDY_NAME as DEMO_STUDY
from ipr.demo import seed_study
from ipr.models import User
from tests.conftest import PASSWORD, ROOT, skip_or_fail
from tests.smtp_inbox import Inbox, smtp_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "test-artifacts"
DESKTOP = {"width": 1280, "height": 800}
TABLET = {"width": 820, "height": 1180}
PHONE = {"width": 390, "height": 844}
# axe-core, pinned in static/vendor/axe-core/VERSION; only the tests ever put it into a page.
AXE_SOURCE = (ROOT / "static" / "vendor" / "axe-core" / "axe.min.js").read_text()
AXE_FAILS_ON = ("serious", "critical")
STARTUP_SECONDS = 120  # importing the app takes seconds on a busy 2-core machine
# The server's IPR_TRANSCRIBE_COMMAND: a stand-in for a local speech model (none is bundled),
# run by the test acting as the worker; it hears two things at fixed times of any audio.
STAND_IN_MODEL = """\
import sys
from pathlib import Path

assert Path(sys.argv[1]).stat().st_size > 0  # it was given the interview audio
print("WEBVTT\\n")
print("00:00:02.100 --> 00:00:03.000\\nThe model heard this at the first stop.\\n")
print("00:00:06.500 --> 00:00:07.500\\nAnd this at the second.")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Researcher:
    email: str
    password: str = PASSWORD


@dataclass
class LiveServer:
    """A running app: its origin, its environment, and a handle on the same database."""

    url: str
    env: dict[str, str]
    database: Database
    log: Path

    def flask(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``flask --app app ...`` against this server's database and folders."""
        return subprocess.run(
            [sys.executable, "-m", "flask", "--app", "app", *args],
            cwd=ROOT,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def create_user(self, email: str, password: str = PASSWORD, role: str = "researcher") -> None:
        """Create an account directly through ipr.auth (a CLI run costs a second per user)."""
        with self.database.session() as s:
            auth.create_user(s, email, password, role)
            s.commit()

    def seed_study(self, owner: Researcher, name: str = DEMO_STUDY) -> int:
        """A populated study owned by ``owner``: two dyads, five codes, the HAT scale and one
        more, instructions and a description (the same shape as the `ipr demo` study)."""
        with self.database.session() as s:
            user = s.scalar(select(User).where(User.email == owner.email))
            study = seed_study(s, user, name)
            return study.id

    def new_researcher(self, label: str = "r") -> Researcher:
        """A researcher with a unique email, so tests never share accounts."""
        who = Researcher(f"{label}-{uuid.uuid4().hex[:8]}@example.org")
        self.create_user(who.email, who.password)
        return who


def _wait_until_up(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the live server exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url + "/login", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)
    pytest.fail(f"the live server did not answer within {STARTUP_SECONDS} s:\n{log.read_text()}")


@pytest.fixture(scope="session")
def smtp_inbox() -> Iterator[Inbox]:
    """A real local SMTP server the live server sends invitation e-mails to."""
    with smtp_server() as inbox:
        yield inbox


@pytest.fixture(scope="session")
def live_server(
    tmp_path_factory: pytest.TempPathFactory, smtp_inbox: Inbox
) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("live")
    (root / "recordings").mkdir()
    (root / "stand_in_model.py").write_text(STAND_IN_MODEL)
    db_url = f"sqlite:///{root / 'ipr.sqlite3'}"
    env = {
        **os.environ,
        "IPR_INSTANCE_PATH": str(root / "instance"),
        "IPR_DATABASE_URL": db_url,
        "IPR_RECORDINGS_DIR": str(root / "recordings"),
        "IPR_SECRET_KEY": "e2e-" + uuid.uuid4().hex,
        "IPR_REDIS_URL": "",
        "IPR_SMTP_URL": smtp_inbox.url,
        "IPR_SMTP_FROM": "ipr@clinic.example.org",
        "IPR_TRANSCRIBE_COMMAND": f"{sys.executable} {root / 'stand_in_model.py'} {{audio}}",
        "PYTHONUNBUFFERED": "1",
    }
    port = free_port()
    log = root / "server.log"
    server = LiveServer(f"http://127.0.0.1:{port}", env, Database(db_url), log)
    migrated = server.flask("ipr", "init-db")
    assert migrated.returncode == 0, migrated.stderr
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "1",
                "--threads",
                "4",
                "--graceful-timeout",
                "5",
                "--timeout",
                str(STARTUP_SECONDS),  # a worker slow to boot must not be killed and rebooted
                "--no-control-socket",  # its default path is shared by every server on the machine
                "app:create_app()",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_up(proc, server.url, log)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        server.database.dispose()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        skip_or_fail(f"{CHROMIUM} is not installed (apt-get install chromium)")

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


FAILED_LOAD = re.compile(r"Failed to load resource: the server responded with a status of (\d+)")


@dataclass
class PageGuard:
    """What one page did that it must not: talk to another host, or log a console error."""

    origin: str
    foreign_requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    expected_statuses: set[int] = field(default_factory=set)
    a11y_violations: list[str] = field(default_factory=list)
    a11y_checked: int = 0

    def expect_status(self, *statuses: int) -> None:
        """The test provokes these HTTP statuses on purpose: Chromium's console note is fine."""
        self.expected_statuses.update(statuses)

    def on_request(self, request: Request) -> None:
        url = request.url
        if url.startswith(("data:", "blob:", "about:")):
            return  # not a network request
        if not (url == self.origin or url.startswith(self.origin + "/")):
            self.foreign_requests.append(url)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        text = message.text
        m = FAILED_LOAD.match(text)
        if m and int(m.group(1)) in self.expected_statuses:
            return
        where = message.location
        self.console_errors.append(f"{text} (at {where['url']}:{where['lineNumber']})")

    def on_page_error(self, error: Exception) -> None:
        self.console_errors.append(f"uncaught: {error}")

    @classmethod
    def watch(cls, page: Page, origin: str) -> PageGuard:
        """A guard listening to ``page``'s requests, console and uncaught errors, kept on the
        page (``GUARD_ATTR``) for ``check_a11y`` and ``expect_status``."""
        guard = cls(origin)
        page.on("request", guard.on_request)
        page.on("console", guard.on_console)
        page.on("pageerror", guard.on_page_error)
        setattr(page, GUARD_ATTR, guard)
        return guard

    def problems(self) -> list[str]:
        return (
            [f"request to another host: {u}" for u in self.foreign_requests]
            + [f"console error: {e}" for e in self.console_errors]
            + [f"accessibility: {v}" for v in self.a11y_violations]
        )


@dataclass
class BrowserPage:
    """A page in its own fresh context, with its guard."""

    page: Page
    guard: PageGuard
    name: str


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """Keep each phase's report on the item so fixtures can tell whether the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:150]


GUARD_ATTR = "_ipr_guard"

AXE_RUN = """async (failsOn) => {
  const result = await window.axe.run(document, { resultTypes: ["violations"] });
  return result.violations.filter((v) => failsOn.includes(v.impact)).map((v) => ({
    id: v.id, impact: v.impact,
    nodes: v.nodes.slice(0, 4).map((n) => n.target.join(" ") + " (" +
      (n.failureSummary || "").split("\\n").slice(1, 2).join("").trim() + ")"),
  }));
}"""


def check_a11y(page: Page, state: str) -> list[str]:
    """Run axe-core on the page as it is now (this state, this window size).

    Serious and critical violations are kept on the page's guard, so the test fails at its end
    with every state's findings listed; they are also returned. Evaluated through the DevTools
    protocol, the script is not subject to the page's CSP and no page of the app ever loads it.
    """
    if page.evaluate("!window.axe"):
        page.evaluate(AXE_SOURCE + "\n;0")  # an expression for the protocol, not a page script
    size = page.viewport_size or {}
    where = f"{state} at {size.get('width')}x{size.get('height')} ({page.url})"
    found = [
        f"{where}: {v['impact']} {v['id']}: {'; '.join(v['nodes'])}"
        for v in page.evaluate(AXE_RUN, list(AXE_FAILS_ON))
    ]
    guard: PageGuard = getattr(page, GUARD_ATTR)
    guard.a11y_checked += 1
    guard.a11y_violations.extend(found)
    return found


def expect_status(page: Page, *statuses: int) -> None:
    """Tell the page's guard that the test provokes these HTTP statuses on purpose."""
    getattr(page, GUARD_ATTR).expect_status(*statuses)


@pytest.fixture
def new_page(
    browser: Browser, live_server: LiveServer, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Page]]:
    """Open a page in a fresh context (own cookies): ``new_page(viewport=TABLET, name="viewer")``.

    At the end: screenshots of every page if the test failed, then the guard's verdict.
    """
    opened: list[BrowserPage] = []
    contexts: list[BrowserContext] = []

    def _open(viewport: dict[str, int] | None = None, name: str = "") -> Page:
        context = browser.new_context(viewport=viewport or DESKTOP, base_url=live_server.url)
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        guard = PageGuard.watch(page, live_server.url)
        opened.append(BrowserPage(page, guard, name or f"page{len(opened) + 1}"))
        return page

    yield _open

    for p in opened:  # every page's last state is checked too, whatever the test did
        if not p.page.is_closed() and p.page.url.startswith(live_server.url):
            try:
                check_a11y(p.page, f"{p.name}, last state")
            except Exception as exc:  # a crashed page must not hide the test's own failure
                print(f"could not run axe on {p.name}: {exc}")
    problems = [f"{p.name}: {msg}" for p in opened for msg in p.guard.problems()]
    call = getattr(request.node, "report_call", None)
    if (call is not None and call.failed) or problems:
        ARTIFACTS.mkdir(exist_ok=True)
        for p in opened:
            path = ARTIFACTS / f"{_safe(request.node.nodeid)}-{p.name}.png"
            try:
                p.page.screenshot(path=str(path), full_page=True)
            except Exception as exc:  # a crashed page must not hide the test's own failure
                print(f"could not save {path}: {exc}")
    for context in contexts:
        context.close()
    assert not problems, "\n".join(problems)


@pytest.fixture
def page(new_page: Callable[..., Page]) -> Page:
    """One desktop-sized page in a fresh context."""
    return new_page(name="page")


def log_in(page: Page, who: Researcher) -> None:
    """Log in through the form, as a researcher would, and land on the studies list."""
    page.goto("/login")
    page.get_by_label("Email").fill(who.email)
    page.get_by_label("Password").fill(who.password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/studies")
