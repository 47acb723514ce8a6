"""`flask --app app ipr ...` commands."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import select

from ipr import auth, twofactor
from ipr import db as dbmod
from ipr.errors import IPRError
from ipr.models import Study, User

ipr_cli = AppGroup("ipr", help="IPR annotator administration.")


def _db():
    return current_app.extensions["ipr_db"].session()


@ipr_cli.command("init-db")
def init_db() -> None:
    """Bring the database to the latest migration (safe to run again)."""
    dbmod.upgrade(current_app.config["DATABASE_URL"])
    click.echo("Database is at the latest migration.")


def _read_password(prompt: bool) -> str:
    if sys.stdin.isatty() and prompt:
        return click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return sys.stdin.readline().rstrip("\r\n")


@ipr_cli.command("create-user")
@click.argument("email")
@click.option("--role", type=click.Choice(["admin", "researcher"]), default="researcher")
def create_user(email: str, role: str) -> None:
    """Create a researcher account; the password comes from a prompt or standard input."""
    password = _read_password(prompt=True)
    with _db() as s:
        try:
            user = auth.create_user(s, email, password, role)
            s.commit()
        except IPRError as exc:
            raise click.ClickException(exc.message) from None
        click.echo(f"Created {user.role} {user.email}.")


@ipr_cli.command("set-password")
@click.argument("email")
def set_password(email: str) -> None:
    """An admin's password reset: the new password comes from a prompt or standard input;
    every login session of the account ends (audited)."""
    password = _read_password(prompt=True)
    with _db() as s:
        user = s.scalar(select(User).where(User.email == email.strip().lower()))
        if user is None:
            raise click.ClickException(f"No user with the email {email}.")
        try:
            auth.set_password(s, user, password, actor="cli", ip=None)
        except IPRError as exc:
            raise click.ClickException(exc.message) from None
        s.commit()
        click.echo(f"Password of {user.email} set; their sessions were ended.")


@ipr_cli.command("reset-2fa")
@click.argument("email")
def reset_2fa(email: str) -> None:
    """Turn off EMAIL's two-factor (a lost phone and lost recovery codes); audited."""
    with _db() as s:
        user = s.scalar(select(User).where(User.email == email.strip().lower()))
        if user is None:
            raise click.ClickException(f"No user with the email {email}.")
        twofactor.disable(s, user, ip=None, actor="cli")
        click.echo(f"Two-factor of {user.email} is off; they can set it up again.")


@ipr_cli.command("token")
@click.argument("email")
@click.option("--name", default="cli", help="A label to recognise the token by.")
def token(email: str, name: str) -> None:
    """Print a new API token for EMAIL (shown once; only its hash is stored)."""
    with _db() as s:
        user = s.scalar(select(User).where(User.email == email.strip().lower()))
        if user is None:
            raise click.ClickException(f"No user with the email {email}.")
        _, plain = auth.create_api_token(s, user, name)
        s.commit()
        click.echo(plain)


@ipr_cli.command("worker")
@click.option("--threads", default=1, show_default=True, help="Jobs run at once in this process.")
@click.option("--metrics-port", default=0, help="Serve this worker's Prometheus counters on "
              "this port (0: none).")  # fmt: skip
@click.option("--metrics-bind", default="127.0.0.1", show_default=True,
              help="Address for --metrics-port.")  # fmt: skip
def worker(threads: int, metrics_port: int, metrics_bind: str) -> None:
    """Run a background worker (the embedded queue, or Redis when IPR_REDIS_URL is set)."""
    from ipr import jobs, metrics

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    where = app.config["REDIS_URL"] or "the embedded queue"
    if metrics_port:
        metrics.serve_worker_metrics(metrics_port, metrics_bind)
        click.echo(f"Worker metrics on http://{metrics_bind}:{metrics_port}/metrics.")
    click.echo(f"Worker started on {where}.")
    jobs.run_worker(app.extensions["ipr_huey"], dict(app.config), app.extensions["ipr_db"], threads)


@ipr_cli.command("figures")
@click.option("--study", "study_id", type=int, help="Only this study's recordings (by id).")
@click.option("--queue-only", is_flag=True, help="Queue the jobs for a worker; do not run here.")
def figures_(study_id: int | None, queue_only: bool) -> None:
    """Bring every ready recording's stored figures up to date (after an upgrade from a version
    without stored figures, or in scripts that export right after writing moments)."""
    from ipr import figures
    from ipr.models import Recording

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    with _db() as s:
        q = select(Recording.study_id, Recording.id).where(Recording.status == "ready")
        if study_id is not None:
            q = q.where(Recording.study_id == study_id)
        by_study: dict[int, list[int]] = {}
        for sid, rid in s.execute(q):
            by_study.setdefault(sid, []).append(rid)
        for sid, ids in by_study.items():
            figures.ensure_queued(s, sid, ids)
        s.commit()
    ran = 0 if queue_only else figures.run_queued(app.extensions["ipr_db"], dict(app.config))
    click.echo(json.dumps({"recordings": sum(map(len, by_study.values())), "computed": ran}))


@ipr_cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--study", "study_name", required=True, help="The study's name.")
@click.option("--dyad", "dyad_code", required=True, help="The dyad's code, e.g. 05.")
@click.option("--session", "session_label", required=True, help="e.g. 'Session 3'.")
@click.option("--wait", is_flag=True, help="Return only when processing has ended.")
def import_(file: Path, study_name: str, dyad_code: str, session_label: str, wait: bool) -> None:
    """Add a file already on the server as a recording; prints {"recording_id", "status"}."""
    from ipr import jobs, recordings
    from ipr.models import Dyad, Recording
    from ipr.storage import Storage

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    huey = app.extensions["ipr_huey"]
    with _db() as s:
        found = s.scalars(select(Study).where(Study.name == study_name)).all()
        if len(found) != 1:
            raise click.ClickException(
                f"No study named {study_name!r}."
                if not found
                else f"{len(found)} studies are named {study_name!r}; rename one first."
            )
        dyad = s.scalar(select(Dyad).where(Dyad.study_id == found[0].id, Dyad.code == dyad_code))
        if dyad is None:
            raise click.ClickException(f"The study has no dyad {dyad_code!r}.")
        try:
            rec = recordings.add_recording(
                s, Storage(app.config["RECORDINGS_DIR"]), huey, dyad, None, session_label,
                file, file.name, sha256=recordings.sha256_file(file),
            )  # fmt: skip
        except IPRError as exc:
            raise click.ClickException(exc.message) from None
        rec_id = rec.id
        if wait:
            job = recordings.latest_job(s, rec)
            # run it here unless a worker has already claimed it; then wait for that worker
            jobs.run_job(app.extensions["ipr_db"], dict(app.config), job.id)
            while True:
                s.expire_all()
                rec = s.get(Recording, rec_id)
                if rec.status in ("ready", "failed"):
                    break
                time.sleep(1)
        out = {"recording_id": rec.id, "status": rec.status}
        if rec.status == "failed":
            out["error"] = rec.error
        click.echo(json.dumps(out))


@ipr_cli.command("export")
@click.argument("recording_id", type=int)
@click.option("--format", "fmt", required=True, help="csv, xlsx, json, eaf, textgrid, vtt, srt, "
              "svg, png, bundle, methods (a Methods paragraph), zip (moment clips), motion_csv, "
              "motion_txt (rMEA's readMEA) or synchrony_csv.")  # fmt: skip
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--no-text", is_flag=True, help="Leave out every free-text field.")
@click.option("--pre-roll-ms", default=5000, show_default=True, help="Moment clips only.")
@click.option("--post-roll-ms", default=5000, show_default=True, help="Moment clips only.")
@click.option("--keyframe-slack-ms", default=2000, show_default=True,
              help="Moment clips: may start this much earlier, at a keyframe.")  # fmt: skip
def export(
    recording_id: int, fmt: str, output: Path, no_text: bool, pre_roll_ms: int,
    post_roll_ms: int, keyframe_slack_ms: int,
) -> None:  # fmt: skip
    """Export one recording to OUTPUT as the operator (audited as 'cli')."""
    import shutil

    from ipr import dataset, figures
    from ipr.models import Recording
    from ipr.storage import Storage

    with _db() as s:
        rec = s.get(Recording, recording_id)
        if rec is None:
            raise click.ClickException(f"No recording with id {recording_id}.")
        # the CLI is no web process: bring this recording's stored figures up to date first
        figures.ensure_queued(s, rec.study_id, [rec.id] if rec.status == "ready" else [])
        s.commit()
        figures.run_queued(current_app.extensions["ipr_db"], dict(current_app.config), rec.id)
        s.expire_all()
        try:
            result = dataset.export(
                s, Storage(current_app.config["RECORDINGS_DIR"]), rec, fmt,
                include_text=not no_text, pre_roll_ms=pre_roll_ms, post_roll_ms=post_roll_ms,
                keyframe_slack_ms=keyframe_slack_ms, actor="cli", tmp_dir=output.parent,
            )  # fmt: skip
        except IPRError as exc:
            raise click.ClickException(exc.message) from None
        if result.path is not None:
            shutil.move(result.path, output)
        else:
            output.write_bytes(result.content or b"")
        s.commit()
        click.echo(f"Wrote {output} ({output.stat().st_size} bytes, {result.media_type}).")


@ipr_cli.command("backup")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def backup_cmd(directory: Path) -> None:
    """Snapshot the database and the media folder into DIRECTORY (new or empty), with a
    manifest of SHA-256 checksums; safe while the app and workers run."""
    from ipr import backup

    try:
        done = backup.backup(
            current_app.config["DATABASE_URL"], Path(current_app.config["RECORDINGS_DIR"]),
            directory,
        )  # fmt: skip
    except backup.BackupError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"Backed up the {done.database} database and {done.files} media files "
               f"({done.bytes} bytes) into {directory}.")  # fmt: skip


@ipr_cli.command("restore")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace the data of a target that is not empty.")
def restore_cmd(directory: Path, force: bool) -> None:
    """Rebuild this instance (IPR_DATABASE_URL, IPR_RECORDINGS_DIR) from a backup in DIRECTORY
    after checking every checksum; stop the app and workers first."""
    from ipr import backup

    try:
        done = backup.restore(
            directory, current_app.config["DATABASE_URL"],
            Path(current_app.config["RECORDINGS_DIR"]), force=force,
        )  # fmt: skip
    except backup.BackupError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"Restored the {done.database} database and {done.files} media files "
               f"({done.bytes} bytes) from {directory}.")  # fmt: skip


DEMO_EMAIL = "demo@example.org"
DEMO_PASSWORD = "demo-password-ipr"


@ipr_cli.command("demo")
@click.option(
    "--base-url",
    default=None,
    help="Where the app is served, for the printed links. Default: IPR_BASE_URL, else "
    "http://127.0.0.1:$PORT (5000 when PORT is unset).",
)
@click.option(
    "--length",
    "seconds",
    default=180,
    show_default=True,
    help="Length of the generated demo recording in seconds.",
)
def demo(base_url: str | None, seconds: int) -> None:
    """Seed the demo study (dyads, codebook, scales, a processed recording with moments) and
    print the researcher login and the participants' links."""
    from ipr import demo as demo_data

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    base_url = printed_base_url(base_url, app.config["BASE_URL"], os.environ.get("PORT"))
    dbmod.upgrade(app.config["DATABASE_URL"])
    with _db() as s:
        user = s.scalar(select(User).where(User.email == DEMO_EMAIL))
        if user is None:
            user = auth.create_user(s, DEMO_EMAIL, DEMO_PASSWORD, "researcher")
            s.commit()
        made = demo_data.ensure_demo(
            s,
            user,
            dict(app.config),
            app.extensions["ipr_db"],
            app.extensions["ipr_huey"],
            seconds=seconds,
        )
        rec = made["recording"]
        click.echo("Demo study ready.")
        click.echo(f"  Researcher login: {DEMO_EMAIL} / {DEMO_PASSWORD}")
        click.echo(f"  Study: {made['study'].name} (id {made['study'].id})")
        click.echo(f"  Recording: {base_url}/recordings/{rec.id} ({rec.status})")
        for code, path in made["links"].items():
            click.echo(f"  Participant link for {code}: {base_url}{path}")
        if not made["links"]:
            click.echo(
                "  (Participant links were printed when the demo was first made; "
                "make new ones on the recording page.)"
            )


def printed_base_url(given: str | None, configured: str, port: str | None) -> str:
    """The address printed links use: --base-url, else IPR_BASE_URL, else the actual port."""
    return (given or configured or f"http://127.0.0.1:{port or 5000}").rstrip("/")


def init_app(app: Flask) -> None:
    app.cli.add_command(ipr_cli)
