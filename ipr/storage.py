"""The only code that builds a path to a media file.

Layout under the recordings folder (``IPR_RECORDINGS_DIR``)::

    <storage_key>/source<.ext>        the upload as received (display name is never a path)
    <storage_key>/derived/            playable.mp4, sprite.jpg, analysis.json, waveform.json,
                                      clips/NNN.mp4 and clips/NNN.jpg,
                                      figures/timeline-<sha256>.png (``ipr.figure_files``)
    <storage_key>/voice/<name>        participants' voice notes
    <storage_key>/interview/<name>    recall interviews' audio (``ipr.interview``)
    .uploads/<upload_id>.part         resumable uploads in progress

Names inside a recording folder come from this module or from the media package, never from
user input; ``resolve`` refuses anything that would leave the folder.
"""

from __future__ import annotations

import re
import shutil
import time
import uuid
from pathlib import Path

from ipr.errors import NotFound

SOURCE_SUFFIXES = {
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mts", ".m2ts", ".ts", ".3gp", ".mpg",
    ".mpeg", ".wmv", ".flv", ".ogv",
}  # fmt: skip
_SAFE_REL = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")


class Storage:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()

    @staticmethod
    def new_key() -> str:
        return str(uuid.uuid4())

    def recording_dir(self, key: str) -> Path:
        uuid.UUID(key)  # a storage key is always a UUID: nothing else becomes a folder name
        return self.root / key

    def source_path(self, key: str, original_name: str) -> Path:
        suffix = Path(original_name).suffix.lower()
        return self.recording_dir(key) / f"source{suffix if suffix in SOURCE_SUFFIXES else ''}"

    def find_source(self, key: str) -> Path | None:
        folder = self.recording_dir(key)
        found = sorted(folder.glob("source*")) if folder.exists() else []
        return found[0] if found else None

    def derived_dir(self, key: str) -> Path:
        return self.recording_dir(key) / "derived"

    def derived(self, key: str, relative: str) -> Path:
        """A derived file by its relative name, refusing anything outside the folder."""
        return self.resolve(self.derived_dir(key), relative)

    TIMELINE_GLOB = "timeline-*.png"

    def timeline_dir(self, key: str) -> Path:
        """The recording's drawn timeline figures (``ipr.figure_files``)."""
        return self.derived_dir(key) / "figures"

    def timeline_png(self, key: str, digest: str) -> Path:
        """The recording's timeline figure as the worker drew it, named by its shapes' hash."""
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise NotFound()
        return self.timeline_dir(key) / f"timeline-{digest}.png"

    def voice_dir(self, key: str) -> Path:
        return self.recording_dir(key) / "voice"

    def voice_path(self, key: str, name: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{32}\.(webm|ogg|m4a|mp4)", name):
            raise NotFound()
        return self.voice_dir(key) / name

    def interview_path(self, key: str, name: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{32}\.(wav|mp3|flac|ogg|m4a|webm)", name):
            raise NotFound()
        return self.recording_dir(key) / "interview" / name

    def export_cache(self, key: str) -> Path:
        """A prepared export (moment clips), named by the hash of what it was made from."""
        if not re.fullmatch(r"[0-9a-f]{64}", key):
            raise NotFound()
        return self.root / ".exports" / f"{key}.zip"

    def prune_exports(self, max_age_s: float) -> int:
        """Remove prepared exports older than ``max_age_s``; they can always be made again."""
        return _prune(self.root / ".exports", max_age_s)

    def staged_import(self, token: str) -> Path:
        """An import file kept between its preview and the researcher's confirm."""
        if not re.fullmatch(r"[0-9a-f]{32}", token):
            raise NotFound()
        return self.root / ".imports" / token

    def prune_staged_imports(self, max_age_s: float) -> int:
        """Remove import files previewed but never confirmed, older than ``max_age_s``."""
        return _prune(self.root / ".imports", max_age_s)

    def uploads_dir(self) -> Path:
        return self.root / ".uploads"

    def upload_part(self, upload_id: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{32}", upload_id):
            raise NotFound()
        return self.uploads_dir() / f"{upload_id}.part"

    @staticmethod
    def resolve(base: Path, relative: str) -> Path:
        if not _SAFE_REL.match(relative) or ".." in relative.split("/"):
            raise NotFound()
        path = (base / relative).resolve()
        if not path.is_relative_to(base.resolve()):
            raise NotFound()
        return path

    def remove_recording(self, key: str) -> None:
        shutil.rmtree(self.recording_dir(key), ignore_errors=True)

    def remove_derived(self, key: str) -> None:
        shutil.rmtree(self.derived_dir(key), ignore_errors=True)


def _prune(folder: Path, max_age_s: float) -> int:
    """Remove the files of ``folder`` last written more than ``max_age_s`` ago; how many."""
    removed = 0
    if folder.exists():
        for path in folder.iterdir():
            if time.time() - path.stat().st_mtime > max_age_s:
                path.unlink(missing_ok=True)
                removed += 1
    return removed
