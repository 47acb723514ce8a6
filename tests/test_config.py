"""Configuration layers, the generated secret key, and the README's settings table."""

from __future__ import annotations

import re
from pathlib import Path

from ipr.config import SETTINGS, load_config

ROOT = Path(__file__).resolve().parents[1]


def test_layers_later_wins(tmp_path: Path) -> None:
    (tmp_path / "config.py").write_text("SESSION_IDLE_MINUTES = 11\nINVITATION_DAYS = 3\n")
    env = {"IPR_INVITATION_DAYS": "5", "IPR_SECURE_COOKIES": "true"}
    cfg = load_config(tmp_path, {"LOG_LEVEL": "DEBUG"}, environ=env)
    assert cfg["SESSION_IDLE_MINUTES"] == 11  # instance file over default
    assert cfg["INVITATION_DAYS"] == 5  # environment over instance file
    assert cfg["SECURE_COOKIES"] is True  # parsed to the declared type
    assert cfg["LOG_LEVEL"] == "DEBUG"  # test dict over everything
    assert cfg["UPLOAD_MAX_BYTES"] == 20 * 1024**3  # untouched default


def test_test_config_overrides_environment(tmp_path: Path) -> None:
    cfg = load_config(tmp_path, {"INVITATION_DAYS": 1}, environ={"IPR_INVITATION_DAYS": "9"})
    assert cfg["INVITATION_DAYS"] == 1


def test_embedded_defaults(tmp_path: Path) -> None:
    cfg = load_config(tmp_path, environ={})
    assert cfg["DATABASE_URL"] == f"sqlite:///{tmp_path / 'ipr.sqlite3'}"
    assert cfg["RECORDINGS_DIR"] == str(ROOT / "recordings")
    assert cfg["REDIS_URL"] == ""


def test_secret_key_generated_once_into_instance(tmp_path: Path) -> None:
    first = load_config(tmp_path, environ={})["SECRET_KEY"]
    second = load_config(tmp_path, environ={})["SECRET_KEY"]
    assert first == second
    assert len(first) == 64 and re.fullmatch(r"[0-9a-f]+", first)
    key_file = tmp_path / "secret_key"
    assert key_file.read_text().strip() == first
    assert key_file.stat().st_mode & 0o077 == 0  # readable by the owner only
    other = tmp_path / "other"
    assert load_config(other, environ={})["SECRET_KEY"] != first


def test_every_setting_is_in_the_readme_table() -> None:
    readme = (ROOT / "README.md").read_text()
    rows = set(re.findall(r"^\|\s*`(IPR_[A-Z_]+)`\s*\|", readme, flags=re.MULTILINE))
    declared = {s.env for s in SETTINGS}
    assert declared - rows == set(), "settings missing from the README's configuration table"
    assert rows - declared == set(), "the README documents settings that do not exist"
