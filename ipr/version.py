"""The software version and commit every export and Methods paragraph cites.

The commit comes from ``IPR_GIT_COMMIT`` (set when building an image without .git), else from
``git rev-parse HEAD`` in the code's folder, else "unknown": a clean copy without git still
exports.
"""

from __future__ import annotations

import os
import re
import subprocess
from functools import cache
from pathlib import Path

from ipr import __version__

APP_NAME = "IPR annotator"
UNKNOWN = "unknown"
_ROOT = Path(__file__).resolve().parents[1]
_SHA = re.compile(r"^[0-9a-f]{7,40}$")


@cache
def git_commit() -> str:
    """The commit the running code was built from, or "unknown"."""
    given = os.environ.get("IPR_GIT_COMMIT", "").strip()
    if given:
        return given
    try:
        done = subprocess.run(
            ["git", "-C", str(_ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN
    sha = done.stdout.strip()
    return sha if done.returncode == 0 and _SHA.match(sha) else UNKNOWN


def software() -> dict[str, str]:
    """Name, version and commit, as every export's provenance carries them."""
    return {"name": APP_NAME, "version": __version__, "commit": git_commit()}
