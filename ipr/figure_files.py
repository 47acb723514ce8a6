"""Each recording's timeline figure (PNG), rendered by the worker ahead of the study bundle.

Rasterising the 2400-px figure takes ~45 ms of CPU (OpenCV's anti-aliased drawing and the PNG
encoder), and a study bundle holds one per recording: 100 of them were half of the bundle's
time (docs/benchmarks.md, "Study scale"). So the worker renders a recording's figure right
after it stores the recording's figures (``ipr.figures.figures_job``) and keeps it beside the
derived media, named by the SHA-256 of the shapes it drew and of the drawing code. An export
uses the kept file when the figure it would draw has the same shapes: the bytes are exactly
those ``ipr.exports.figure.to_png`` gives. Otherwise (a code colour or a dyad code changed since,
or the worker has not got there yet) the export draws the figure itself and keeps it.

A figure holds pseudonymous codes, code names and times only, never free text. Only the newest
figure of a recording is kept; the folder goes with the recording's derived files.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import uuid
from pathlib import Path

import cv2
from sqlalchemy.orm import Session

from ipr.exports import figure
from ipr.exports.data import DEFAULT_EXPORTED_AT, RecordingContext
from ipr.exports.figure import Scene, png_of, scene
from ipr.models import Recording
from ipr.storage import Storage

log = logging.getLogger("ipr.figure_files")

_RENDERER = hashlib.sha256(Path(figure.__file__).read_bytes() + cv2.__version__.encode()).digest()
"""The drawing code and the OpenCV that rasterises it: a change to either draws anew."""


def digest(drawn: Scene) -> str:
    """The file name's hash: the shapes (exact floats) and the renderer."""
    return hashlib.sha256(_RENDERER + repr(drawn).encode()).hexdigest()


class Figures:
    """The PNG of each recording of one export, from the kept files where they match.

    ``keys`` maps a recording id to its storage key; a recording not in it is drawn. Safe to
    call from the bundle's figure thread (files only, written atomically).
    """

    def __init__(self, storage: Storage, keys: dict[int | str, str]) -> None:
        self.storage = storage
        self.keys = keys

    def png(self, ctx: RecordingContext, drawn: Scene) -> bytes:
        key = self.keys.get(ctx.recording.id)
        if key is None:
            return png_of(drawn)
        path = self.storage.timeline_png(key, digest(drawn))
        try:
            return path.read_bytes()
        except FileNotFoundError:
            pass
        content = png_of(drawn)
        try:
            _keep(path, content)
        except OSError:  # a read-only or full disk costs the next export the drawing, no more
            log.warning("could not keep the timeline figure %s", path, exc_info=True)
        return content


def _keep(path: Path, content: bytes) -> None:
    """Write the figure atomically, then remove the recording's older figures."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{uuid.uuid4().hex}.tmp")
    tmp.write_bytes(content)
    os.replace(tmp, path)
    for other in path.parent.glob(Storage.TIMELINE_GLOB):
        if other.name != path.name:
            other.unlink(missing_ok=True)


def forget(storage: Storage, key: str) -> None:
    """Remove a recording's drawn figures now (a participant's data erased: their moments are
    in the picture until the worker draws it again)."""
    shutil.rmtree(storage.timeline_dir(key), ignore_errors=True)


def prepare(db: Session, storage: Storage, recording_id: int) -> bool:
    """Worker: draw the recording's figure as exports will (stored pairs included) and keep
    it. False when there is nothing to draw (no such recording, or not processed)."""
    from ipr import dataset  # dataset reads the figures layer, which calls this

    rec = db.get(Recording, recording_id)
    if rec is None or rec.status != "ready":
        return False
    data = dataset.study_for_recording(db, rec, exported_at=DEFAULT_EXPORTED_AT)
    ctx = data.only_recording()
    Figures(storage, {rec.id: rec.storage_key}).png(ctx, scene(ctx))
    return True
