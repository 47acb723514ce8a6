"""Serving a file with HTTP Range requests (RFC 9110 §14) by seeking, never by reading up to it.

Werkzeug's ``send_file`` hands the file to ``wsgi.file_wrapper``; under gunicorn that wrapper is
not seekable, so a range is reached by reading (and discarding) every byte before it. Here the
file is positioned at the range start first and handed over as a window that can never read past
the range end: gunicorn then ``sendfile``s exactly the range, and every other server (the
development server, gunicorn without sendfile, the test client) reads only the range's bytes.
"""

from __future__ import annotations

import io
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import quote

from flask import current_app, request
from werkzeug.http import http_date
from werkzeug.wrappers import Response

CHUNK = 256 * 1024
MAX_RANGES = 16  # more ranges in one request are refused with 416 (see ``parse_range``)


@dataclass(frozen=True)
class ByteRange:
    """An inclusive byte range, already resolved against the file size."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end}/{size}"


class RangeNotSatisfiable(Exception):
    """No requested range overlaps the file, or too many ranges were asked for (→ 416)."""


class BadRange(ValueError):
    """A range number is not plain ASCII digits of bounded length (→ 400, never a 500)."""


MAX_DIGITS = 18  # 10^18 bytes is far beyond any file


def _number(text: str) -> int | None:
    """A range number; ``None`` for junk (the header is then ignored, RFC 9110 §14.2).

    Digits other than ASCII ('²', '٣') and overlong numbers raise ``BadRange``: Python would
    accept the first and choke on the second, so they are refused explicitly.
    """
    if text.isascii() and text.isdigit():
        if len(text) > MAX_DIGITS:
            raise BadRange(f"a range number has more than {MAX_DIGITS} digits")
        return int(text)
    if text.isdigit() or text.isdecimal() or text.isnumeric():
        raise BadRange("range numbers are ASCII digits")
    return None


def parse_range(header: str | None, size: int) -> list[ByteRange] | None:
    """The ranges a ``Range`` header asks for, clipped to ``size``, sorted and merged.

    ``None`` means "send the whole file": no header, another unit, or a malformed header (which
    RFC 9110 says to ignore). Raises ``RangeNotSatisfiable`` when no range overlaps the file or
    the header lists more than ``MAX_RANGES`` ranges: honouring hundreds of tiny or overlapping
    ranges is a cheap way to make the server do a lot of work. Overlapping and adjacent ranges
    are merged (RFC 9110 §14.2 allows it), so one response never carries more than the file's
    bytes: ``bytes=0-,0-`` is one range. Raises ``BadRange`` for non-ASCII or overlong numbers.
    """
    if not header:
        return None
    unit, sep, spec = header.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    parts = [p.strip() for p in spec.split(",")]
    if len(parts) > MAX_RANGES:
        raise RangeNotSatisfiable(f"at most {MAX_RANGES} ranges per request")
    wanted: list[tuple[int | None, int | None]] = []
    for part in parts:
        first, dash, last = part.partition("-")
        if not dash or (not first and not last):
            return None
        start = _number(first) if first else None
        end = _number(last) if last else None
        if (first and start is None) or (last and end is None):
            return None
        if start is not None and end is not None and end < start:
            return None
        wanted.append((start, end))
    ranges: list[ByteRange] = []
    for start, end in wanted:
        if start is None:  # suffix: the last ``end`` bytes
            if end == 0 or size == 0:
                continue
            ranges.append(ByteRange(max(size - (end or 0), 0), size - 1))
        elif start < size:
            ranges.append(ByteRange(start, size - 1 if end is None else min(end, size - 1)))
    if not ranges:
        raise RangeNotSatisfiable("no requested range overlaps the file")
    return merge_ranges(ranges)


def merge_ranges(ranges: list[ByteRange]) -> list[ByteRange]:
    """Sorted, with overlapping and adjacent ranges joined: their total never exceeds the file."""
    merged: list[ByteRange] = []
    for r in sorted(ranges, key=lambda r: r.start):
        if merged and r.start <= merged[-1].end + 1:
            merged[-1] = ByteRange(merged[-1].start, max(merged[-1].end, r.end))
        else:
            merged.append(r)
    return merged


def etag_for(st: os.stat_result) -> str:
    """A strong validator that changes whenever the file is replaced or rewritten."""
    return f'"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"'


def if_range_matches(value: str | None, etag: str, mtime: float) -> bool:
    """``If-Range`` holds when absent, equal to the strong ETag, or equal to Last-Modified."""
    if value is None:
        return True
    value = value.strip()
    if value.startswith(('"', "W/")):
        return value == etag  # weak validators never match (RFC 9110 §13.1.5)
    try:
        stamp = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return False
    return int(stamp.timestamp()) == int(mtime)


class _Window(io.RawIOBase):
    """A file positioned at ``start`` that never reads outside ``[start, start + length)``.

    Handed to ``wsgi.file_wrapper``: gunicorn takes ``fileno()`` and the current position for
    ``sendfile`` with Content-Length as the count (``socket.sendfile`` then seeks the file, so
    seeking is allowed); any server that iterates instead calls ``read`` and gets nothing past
    the window, so it cannot read on to the end of the file.
    """

    def __init__(self, path: Path, start: int, length: int) -> None:
        self._fh = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by the WSGI server
        self._start = start
        self._end = start + length
        self._fh.seek(start)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        return self._fh.seek(pos, whence)

    def tell(self) -> int:
        return self._fh.tell()

    def fileno(self) -> int:
        return self._fh.fileno()

    def read(self, size: int = -1) -> bytes:
        pos = self._fh.tell()
        if pos < self._start:
            pos = self._fh.seek(self._start)
        left = self._end - pos
        if left <= 0:
            return b""
        size = left if size is None or size < 0 else min(size, left)
        return self._fh.read(size) or b""

    def close(self) -> None:
        self._fh.close()
        super().close()


def _iter_window(path: Path, start: int, length: int) -> Iterator[bytes]:
    window = _Window(path, start, length)
    try:
        while chunk := window.read(CHUNK):
            yield chunk
    finally:
        window.close()


def _iter_multipart(
    path: Path, ranges: list[ByteRange], heads: list[bytes], tail: bytes
) -> Iterator[bytes]:
    with open(path, "rb", buffering=0) as fh:
        for rng, head in zip(ranges, heads, strict=True):
            yield head
            fh.seek(rng.start)
            left = rng.length
            while left > 0 and (chunk := fh.read(min(CHUNK, left))):
                left -= len(chunk)
                yield chunk
            yield b"\r\n"
    yield tail


def _base_headers(resp: Response, st: os.stat_result, etag: str, download: str | None) -> None:
    resp.headers["Accept-Ranges"] = "bytes"
    resp.headers["ETag"] = etag
    resp.headers["Last-Modified"] = http_date(st.st_mtime)
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    if download:
        resp.headers["Content-Disposition"] = f'attachment; filename="{download}"'


def _window_response(
    environ: dict, path: Path, start: int, length: int, status: int, mimetype: str
) -> Response:
    wrapper = environ.get("wsgi.file_wrapper")
    if wrapper is not None and environ.get("REQUEST_METHOD") != "HEAD":
        body = wrapper(_Window(path, start, length), CHUNK)
    else:
        body = _iter_window(path, start, length)
    resp = Response(body, status=status, mimetype=mimetype, direct_passthrough=True)
    resp.content_length = length
    return resp


def accel_uri(prefix: str, root: Path, path: Path) -> str:
    """The internal nginx URI naming ``path`` under ``prefix`` (``root`` maps to the prefix)."""
    relative = path.resolve().relative_to(Path(root).resolve()).as_posix()
    return prefix.rstrip("/") + "/" + quote(relative)


def send_range(
    path: Path,
    mimetype: str,
    *,
    download_name: str | None = None,
    accel_prefix: str = "",
    accel_root: Path | None = None,
) -> Response:
    """Serve ``path`` for the current Flask request; call only after the permission check.

    With ``accel_prefix`` the bytes are left to nginx under that internal prefix, which maps to
    ``accel_root`` (default: the recordings folder).
    """
    uri = None
    if accel_prefix:
        root = accel_root or current_app.extensions["ipr_storage"].root
        uri = accel_uri(accel_prefix, root, path)
    return range_response(request.environ, path, mimetype, download_name=download_name, accel=uri)


def range_response(
    environ: dict,
    path: Path,
    mimetype: str,
    *,
    download_name: str | None = None,
    accel: str | None = None,
) -> Response:
    """Serve ``path`` honouring the Range and If-Range headers in the WSGI ``environ``.

    With ``accel`` (see ``accel_uri``) the bytes are left to nginx: the answer is an empty
    response whose ``X-Accel-Redirect`` is that URI. ``download_name`` must already be a safe
    ASCII name.
    """
    if accel:
        resp = Response(b"", status=200, mimetype=mimetype)
        resp.headers["X-Accel-Redirect"] = accel
        resp.headers["Cache-Control"] = "no-store"
        resp.headers["X-Content-Type-Options"] = "nosniff"
        if download_name:
            resp.headers["Content-Disposition"] = f'attachment; filename="{download_name}"'
        return resp
    st = path.stat()
    size = st.st_size
    etag = etag_for(st)
    try:
        ranges = None
        if if_range_matches(environ.get("HTTP_IF_RANGE"), etag, st.st_mtime):
            ranges = parse_range(environ.get("HTTP_RANGE"), size)
    except BadRange as exc:
        resp = Response(f"Bad Range header: {exc}.", status=400, mimetype="text/plain")
        resp.headers["Cache-Control"] = "no-store"
        return resp
    except RangeNotSatisfiable:
        resp = Response(b"", status=416, mimetype=mimetype)
        resp.headers["Content-Range"] = f"bytes */{size}"
        _base_headers(resp, st, etag, None)
        return resp
    if ranges is None:
        resp = _window_response(environ, path, 0, size, 200, mimetype)
    elif len(ranges) == 1:
        resp = _window_response(environ, path, ranges[0].start, ranges[0].length, 206, mimetype)
        resp.headers["Content-Range"] = ranges[0].content_range(size)
    else:
        boundary = secrets.token_hex(16)
        heads = [
            (
                f"--{boundary}\r\nContent-Type: {mimetype}\r\n"
                f"Content-Range: {r.content_range(size)}\r\n\r\n"
            ).encode("ascii")
            for r in ranges
        ]
        tail = f"--{boundary}--\r\n".encode("ascii")
        length = sum(len(h) + r.length + 2 for h, r in zip(heads, ranges, strict=True)) + len(tail)
        resp = Response(
            _iter_multipart(path, ranges, heads, tail),
            status=206,
            content_type=f"multipart/byteranges; boundary={boundary}",
            direct_passthrough=True,
        )
        resp.content_length = length
    _base_headers(resp, st, etag, download_name)
    return resp
