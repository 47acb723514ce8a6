"""Named failures of the media package, each with a message a researcher can act on."""

from __future__ import annotations


class MediaError(Exception):
    """Base class: `message` is for the researcher, `code` is short and stable for machines."""

    code = "media_error"

    def __init__(self, message: str, code: str | None = None, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.message} [{self.code}]"


class ProbeError(MediaError):
    """The file could not be read as a usable session recording."""

    code = "unreadable"


class UnsupportedMedia(MediaError):
    """The file is readable media, but not something we accept (no video, odd codec, limits)."""

    code = "unsupported"


class ProcessingError(MediaError):
    """ffmpeg failed, hung or ran out of its resource limits while working on an accepted file."""

    code = "processing_failed"


class IngestCancelled(MediaError):
    """The caller asked to stop; everything written so far has been removed."""

    code = "cancelled"
