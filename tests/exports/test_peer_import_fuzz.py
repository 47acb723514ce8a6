"""Fuzzing the peers' readers: any bytes give choices or a named refusal, never a crash."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from ipr.exports import peers
from ipr.exports.imports import ImportValidationError

FAST = settings(max_examples=150, deadline=None, derandomize=True)

TEXTGRID_HEAD = 'File type = "ooTextFile"\nObject class = "TextGrid"\n'
tokens = st.lists(
    st.one_of(
        st.sampled_from(['"IntervalTier"', '"TextTier"', "<exists>", "<absent>", '""', "]"]),
        st.integers(-5, 10).map(str),
        st.floats(-1e6, 1e12, allow_nan=False).map(repr),
        st.text(max_size=8).map(lambda t: '"' + t.replace('"', '""') + '"'),
    ),
    max_size=40,
)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text()),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)


def _read(data: bytes, name: str) -> None:
    try:
        kind = peers.detect(data, name)
        found = peers.choices(data, kind)
        for choice in found:
            if choice.moments and not choice.problems:
                peers.moments(data, kind, choice.name, codebook=[])
    except ImportValidationError as exc:
        assert exc.problems and all(isinstance(p, str) and p for p in exc.problems)


@FAST
@given(tokens)
def test_any_textgrid_tokens(items):
    _read((TEXTGRID_HEAD + "\n".join(items)).encode(), "x.TextGrid")


@FAST
@given(st.binary(max_size=300), st.sampled_from(["x.TextGrid", "x.boris", "x.tsv", "x.csv"]))
def test_any_bytes(data, name):
    _read(data, name)


@FAST
@given(json_values, st.lists(st.lists(json_values, max_size=6), max_size=5))
def test_any_boris_shaped_json(conf, events):
    project = {
        "observations": {"o": {"events": events}, "p": conf},
        "behaviors_conf": {"0": {"code": "s", "type": "State event"}, "1": conf},
    }
    _read(json.dumps(project).encode(), "x.boris")


@FAST
@given(st.lists(st.lists(st.text(max_size=6), max_size=10), max_size=6))
def test_any_boris_table_rows(rows):
    header = "Time\tSubject\tBehavior\tModifiers\tComment\tStatus"
    text = header + "\n" + "\n".join("\t".join(r) for r in rows)
    _read(text.encode(), "x.tsv")
