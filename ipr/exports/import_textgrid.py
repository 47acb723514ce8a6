"""Praat TextGrid reader: interval and point tiers, long and short text forms, UTF-8/UTF-16.

Praat reads a text file as a stream of numbers and quoted strings, skipping the labels between
them (`xmin =`, `intervals [3]:`); this reader does the same, so the long ("ooTextFile" with
labels) and short forms read alike. A string's `""` is one quote; a string may span lines.
Each tier becomes a `PeerTier` of neutral `ImportedMoment` rows: a non-empty interval a span,
a point a point moment. Empty intervals (Praat fills gaps with them) are not moments.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from ipr.exports.imports import ImportedMoment, ImportValidationError
from ipr.exports.peer_rows import PeerTier, decode_text, label_moment

FORMAT = "Praat TextGrid"
_TOKEN = re.compile(
    r'"(?P<s>(?:[^"]|"")*)"'  # a string ("" inside is one quote)
    r"|\[[^\]\n]*\]"  # an index label such as [3]
    r"|(?P<flag><exists>|<absent>)"
    r"|[A-Za-z_][\w?]*:?"  # a label word such as xmin, tiers?, intervals:
    r"|(?P<n>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
    r"|!.*"  # a comment to the end of the line
    r"|\S",  # anything else (=, :) is skipped
)


def looks_like_textgrid(data: bytes) -> bool:
    head = decode_text(data[:400], FORMAT, strict=False)
    return '"ooTextFile"' in head and '"TextGrid"' in head


def _tokens(text: str) -> list[str | Decimal]:
    out: list[str | Decimal] = []
    for match in _TOKEN.finditer(text):
        if match.group("s") is not None:
            out.append(match.group("s").replace('""', '"'))
        elif match.group("n") is not None:
            try:
                out.append(Decimal(match.group("n")))
            except InvalidOperation:  # pragma: no cover - the pattern only matches numbers
                continue
        elif match.group("flag") is not None:
            out.append(match.group("flag"))
    return out


def _ms(value: Decimal) -> int:
    """Seconds to whole milliseconds, rounding half up (2.30 → 2300, 3.9809256 → 3981)."""
    return int((value * 1000).to_integral_value(rounding="ROUND_HALF_UP"))


class _Stream:
    def __init__(self, tokens: list[str | Decimal]):
        self.tokens, self.at = tokens, 0

    def take(self, kind: type, what: str):
        if self.at >= len(self.tokens):
            raise ImportValidationError([f"{FORMAT}: the file ends where {what} should be"])
        token = self.tokens[self.at]
        self.at += 1
        if not isinstance(token, kind):
            expected = "a number" if kind is Decimal else "a quoted text"
            raise ImportValidationError(
                [f"{FORMAT}: {what} should be {expected}, found {str(token)!r}"]
            )
        return token


def read_textgrid(data: bytes) -> list[PeerTier]:
    """Every tier of a TextGrid, in file order."""
    if data.startswith(b"ooBinaryFile"):
        raise ImportValidationError(
            [f"{FORMAT} (binary): save it from Praat as a text file (Save as text file…)"]
        )
    text = decode_text(data, FORMAT)
    stream = _Stream(_tokens(text))
    if stream.take(str, "the file type") != "ooTextFile":
        raise ImportValidationError([f"{FORMAT}: the file type is not ooTextFile"])
    kind = stream.take(str, "the object class")
    if kind != "TextGrid":
        raise ImportValidationError(
            [f"Praat text file of class {kind!r}: only TextGrid files hold annotations"]
        )
    stream.take(Decimal, "the grid's xmin")
    stream.take(Decimal, "the grid's xmax")
    if stream.take(str, "tiers? <exists>") != "<exists>":
        return []
    size = int(stream.take(Decimal, "the number of tiers"))
    tiers: list[PeerTier] = []
    for number in range(1, size + 1):
        tier_class = stream.take(str, f"tier {number}'s class")
        name = stream.take(str, f"tier {number}'s name")
        stream.take(Decimal, f"tier {name!r} xmin")
        stream.take(Decimal, f"tier {name!r} xmax")
        count = int(stream.take(Decimal, f"tier {name!r} size"))
        moments: list[ImportedMoment] = []
        if tier_class == "IntervalTier":
            for i in range(1, count + 1):
                lo = _ms(stream.take(Decimal, f"interval {i} of {name!r} xmin"))
                hi = _ms(stream.take(Decimal, f"interval {i} of {name!r} xmax"))
                mark = stream.take(str, f"interval {i} of {name!r} text")
                if mark.strip():
                    where = f"tier {name!r} interval {i}"
                    moments.append(label_moment(lo, hi, mark, where))
        elif tier_class == "TextTier":
            for i in range(1, count + 1):
                at = _ms(stream.take(Decimal, f"point {i} of {name!r} time"))
                mark = stream.take(str, f"point {i} of {name!r} mark")
                moments.append(label_moment(at, None, mark, f"tier {name!r} point {i}"))
        else:
            raise ImportValidationError(
                [f"{FORMAT}: tier {name!r} has class {tier_class!r}, not IntervalTier or TextTier"]
            )
        tiers.append(PeerTier(name=name, moments=tuple(moments)))
    return tiers
