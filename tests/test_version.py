"""The version and commit every export cites, also in a copy without git."""

from __future__ import annotations

import subprocess
import tomllib

import ipr
from ipr import version
from tests.conftest import ROOT


def test_the_version_is_the_one_in_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert ipr.__version__ == project["project"]["version"]


def test_commit_comes_from_git_here(monkeypatch) -> None:
    monkeypatch.delenv("IPR_GIT_COMMIT", raising=False)
    version.git_commit.cache_clear()
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    )
    expected = head.stdout.strip() if head.returncode == 0 else "unknown"
    assert version.git_commit() == expected
    version.git_commit.cache_clear()


def test_commit_from_the_environment_wins(monkeypatch) -> None:
    monkeypatch.setenv("IPR_GIT_COMMIT", "0123abc")
    version.git_commit.cache_clear()
    assert version.software() == {
        "name": "IPR annotator",
        "version": ipr.__version__,
        "commit": "0123abc",
    }
    version.git_commit.cache_clear()


def test_a_copy_without_git_says_unknown(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("IPR_GIT_COMMIT", raising=False)
    monkeypatch.setattr(version, "_ROOT", tmp_path)  # a folder outside any repository
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    version.git_commit.cache_clear()
    assert version.git_commit() == "unknown"
    monkeypatch.setenv("PATH", str(tmp_path))  # no git program at all
    version.git_commit.cache_clear()
    assert version.git_commit() == "unknown"
    version.git_commit.cache_clear()
