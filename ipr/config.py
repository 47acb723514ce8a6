"""Every setting, declared once with its default and help text.

Layers, later wins: these defaults -> ``instance/config.py`` -> ``IPR_*`` environment variables ->
the test dict given to ``create_app``. The README's configuration table is checked against
``SETTINGS`` by a test, so a setting cannot be added without being documented.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Setting:
    name: str  # config key; the environment variable is IPR_<name>
    default: Any
    help: str
    type: type = str

    @property
    def env(self) -> str:
        return f"IPR_{self.name}"

    def parse(self, raw: str) -> Any:
        if self.type is bool:
            return raw.strip().lower() in {"1", "true", "yes", "on"}
        if self.type is int:
            return int(raw)
        if self.type is float:
            return float(raw)
        return raw


DAY = 24 * 3600

SETTINGS: tuple[Setting, ...] = (
    Setting(
        "DATABASE_URL",
        "",
        "SQLAlchemy database URL. Empty: SQLite (WAL) at instance/ipr.sqlite3. "
        "At scale: postgresql+psycopg://user@host/db.",
    ),
    Setting(
        "RECORDINGS_DIR",
        "",
        "Folder that holds uploaded and derived media. Empty: recordings/ beside app.py. "
        "At scale: a volume shared by the web and worker machines.",
    ),
    Setting(
        "REDIS_URL",
        "",
        "Redis URL for the task queue (e.g. redis://127.0.0.1:6379/0). Empty: the embedded "
        "SQLite queue in instance/, which needs no extra server.",
    ),
    Setting(
        "SECRET_KEY",
        "",
        "Key that signs session cookies. Empty: a random key generated once into "
        "instance/secret_key.",
    ),
    Setting(
        "SESSION_IDLE_MINUTES",
        30,
        "A researcher who does nothing for this long is logged out.",
        int,
    ),
    Setting(
        "SECURE_COOKIES",
        False,
        "Mark cookies Secure (set true whenever the app is served over HTTPS).",
        bool,
    ),
    Setting(
        "LOGIN_MAX_FAILURES",
        5,
        "Failed logins for one account from one address before further logins from there "
        "must wait.",
        int,
    ),
    Setting(
        "LOGIN_LOCKOUT_SECONDS",
        60,
        "First wait imposed after too many failed logins; it doubles with each further failure "
        "(at most 15 minutes).",
        int,
    ),
    Setting(
        "PROXY_HOPS",
        0,
        "Reverse proxies in front of the app (1 behind nginx): their X-Forwarded-For and "
        "X-Forwarded-Proto are trusted, so login and PIN counts are kept per real client "
        "address. 0: the connecting address is the client.",
        int,
    ),
    Setting(
        "PIN_LOCK_AFTER",
        10,
        "Wrong PINs for one invitation before it locks until a researcher unlocks it.",
        int,
    ),
    Setting(
        "PIN_FREE_ATTEMPTS",
        3,
        "Wrong PINs for one invitation before each further try must wait (from one address: "
        "PIN_LOCK_AFTER, across invitations).",
        int,
    ),
    Setting(
        "PIN_DELAY_SECONDS",
        2.0,
        "First wait after the free wrong PINs; it doubles with each further one (at most 15 "
        "minutes).",
        float,
    ),
    Setting(
        "MOMENTS_PER_SESSION",
        2000,
        "Most moments one recall session may hold (deleted ones do not count).",
        int,
    ),
    Setting(
        "MOMENT_TEXT_MAX",
        10_000,
        "Most characters in a moment's text.",
        int,
    ),
    Setting(
        "VOICE_NOTE_MAX_BYTES",
        20 * 1024**2,
        "Largest voice note in bytes (checked while it streams in).",
        int,
    ),
    Setting(
        "WRITE_RATE_PER_MINUTE",
        300,
        "Writes per minute for one participant link (moments, positions, voice notes) or one "
        "researcher (any change but upload chunks); more answer 429. Counted in Redis when "
        "IPR_REDIS_URL is set (shared by all workers), else in the process (0: no limit).",
        int,
    ),
    Setting(
        "UPLOAD_MAX_BYTES",
        20 * 1024**3,
        "Largest accepted upload in bytes (default 20 GB).",
        int,
    ),
    Setting(
        "REQUEST_MAX_BYTES",
        2 * 1024**2,
        "Largest request body in bytes for every request except uploads, imports and voice "
        "notes, which have their own limits.",
        int,
    ),
    Setting(
        "IMPORT_MAX_BYTES",
        16 * 1024**2,
        "Largest CSV or ELAN file accepted by an import, in bytes.",
        int,
    ),
    Setting(
        "INTERVIEW_AUDIO_MAX_BYTES",
        1024**3,
        "Largest recall-interview audio file in bytes (checked while it streams in).",
        int,
    ),
    Setting(
        "TRANSCRIBE_COMMAND",
        "",
        "A locally installed speech-to-text command for recall interviews, run by a worker with "
        "the audio's path ({audio}, else appended) and printing WebVTT (docs/interview.md). "
        "Empty: no automatic transcription; import transcripts instead.",
    ),
    Setting(
        "IMPORT_MAX_ROWS",
        10_000,
        "Most moments one import may add; a longer file is refused before anything is stored.",
        int,
    ),
    Setting(
        "INVITATION_DAYS",
        14,
        "Days before a participant's invitation link expires.",
        int,
    ),
    Setting(
        "BASE_URL",
        "",
        "Where participants and researchers reach the app (e.g. https://ipr.example.org), for "
        "every printed or e-mailed link. Empty: the address of the request (the CLI: "
        "http://127.0.0.1:$PORT).",
    ),
    Setting(
        "SMTP_URL",
        "",
        "SMTP server for invitation and reminder e-mails: smtp://host:port (smtps:// for TLS, "
        "smtp+starttls:// for STARTTLS, user:password@ before the host to log in). Empty: no "
        "e-mail buttons.",
    ),
    Setting(
        "SMTP_FROM",
        "",
        "The From address of invitation e-mails (e.g. ipr@clinic.example.org).",
    ),
    Setting(
        "X_ACCEL_REDIRECT",
        "",
        "When set (e.g. /protected-media/), media bytes are handed to nginx with "
        "X-Accel-Redirect under this internal prefix after the app's permission check.",
    ),
    Setting(
        "MEDIA_GRANT_SECONDS",
        5,
        "After a media URL passed the permission check, repeat requests for it with the same "
        "cookies are answered for this long without the database (0: check every request).",
        float,
    ),
    Setting(
        "WORKER_HEARTBEAT_SECONDS",
        30,
        "A running job whose worker has not reported for 4x this long is picked up again; "
        "each worker also sweeps this often for queued jobs missing from the queue.",
        int,
    ),
    Setting(
        "LOG_LEVEL",
        "INFO",
        "Python logging level for the app and the worker.",
    ),
    Setting(
        "GIT_COMMIT",
        "",
        "The commit every export cites (set it when building an image without .git). "
        "Empty: git rev-parse HEAD of the code's folder, else unknown. Read from the environment.",
    ),
    Setting(
        "LOG_FORMAT",
        "text",
        "text, or json: one JSON object a line with the request id (X-Request-Id) and job id.",
    ),
    Setting(
        "METRICS_ALLOW",
        "127.0.0.1,::1",
        "Addresses or networks (comma-separated) that may read /metrics without a token.",
    ),
    Setting(
        "METRICS_TOKEN",
        "",
        "A secret that also admits a /metrics scrape from anywhere as "
        "'Authorization: Bearer <secret>'. Empty: only METRICS_ALLOW.",
    ),
)

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


def load_config(
    instance_path: Path,
    test_config: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Resolve every setting through the four layers and fill the derived defaults."""
    environ = os.environ if environ is None else environ
    cfg: dict[str, Any] = {s.name: s.default for s in SETTINGS}
    instance_file = instance_path / "config.py"
    if instance_file.exists():
        namespace: dict[str, Any] = {}
        exec(compile(instance_file.read_text(), str(instance_file), "exec"), namespace)  # noqa: S102
        cfg.update({k: v for k, v in namespace.items() if k in BY_NAME})
    for setting in SETTINGS:
        if setting.env in environ:
            cfg[setting.name] = setting.parse(environ[setting.env])
    if test_config:
        cfg.update(test_config)
    root = Path(__file__).resolve().parent.parent
    if not cfg["DATABASE_URL"]:
        cfg["DATABASE_URL"] = f"sqlite:///{instance_path / 'ipr.sqlite3'}"
    if not cfg["RECORDINGS_DIR"]:
        cfg["RECORDINGS_DIR"] = str(root / "recordings")
    if not cfg["SECRET_KEY"]:
        cfg["SECRET_KEY"] = instance_secret_key(instance_path)
    return cfg


def instance_secret_key(instance_path: Path) -> str:
    """Generate a random key into instance/ on first run; never hard-coded."""
    instance_path.mkdir(parents=True, exist_ok=True)
    key_file = instance_path / "secret_key"
    if not key_file.exists():
        try:
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process (the worker) wrote it first
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
    return key_file.read_text().strip()
