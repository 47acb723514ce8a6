"""What the peers' readers (TextGrid, BORIS, ELAN) share: tiers of neutral moment rows.

A reader turns a file into `PeerTier`s, each a named list of `ImportedMoment`s (the same rows the
CSV and EAF readers produce). `ipr.exports.peers` groups tiers into what the researcher picks
(a lane's tiers together) and previews them before anything is written.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from ipr.exports.data import LANES
from ipr.exports.imports import ImportedMoment, ImportValidationError

_CODES = re.compile(r"^\[([^\[\]]*)\](?: (.*))?$", re.DOTALL)


@dataclass(frozen=True)
class PeerTier:
    """One tier (TextGrid tier, BORIS observation/subject) of moments read from a file."""

    name: str
    moments: tuple[ImportedMoment, ...]
    problems: tuple[str, ...] = ()
    """Why this tier cannot be imported (an unpaired BORIS state, say); other tiers still can."""


def lane_of(name: str) -> str | None:
    """The lane a tier belongs to when its name starts with one (`therapist spans 2`)."""
    first = name.strip().split(" ", 1)[0].lower() if name.strip() else ""
    return first if first in LANES else None


def decode_text(data: bytes, fmt: str, *, strict: bool = True) -> str:
    """Text by its byte-order mark (UTF-16 LE/BE, UTF-8), else UTF-8."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    elif data.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"
    else:
        encoding = "utf-8"
    try:
        return data.decode(encoding, errors="strict" if strict else "ignore")
    except UnicodeDecodeError as exc:
        raise ImportValidationError(
            [f"{fmt}: byte {exc.start} is not {encoding.upper()} text; save the file as UTF-8"]
        ) from None


def label_moment(t_ms: int, end_ms: int | None, label: str, where: str) -> ImportedMoment:
    """A moment from a label; `[code;code] text` (how our TextGrid export writes codes) gives
    codes and text. `ipr.exports.peers` puts codes the codebook lacks back into the text."""
    match = _CODES.match(label)
    codes: tuple[str, ...] = ()
    text = label
    if match:
        codes = tuple(c.strip() for c in match.group(1).split(";") if c.strip())
        text = match.group(2) or ""
    return ImportedMoment(t_ms=t_ms, end_ms=end_ms, text=text, codes=codes, source=where)
