"""Hypothesis fuzzing of the parsers that read what a client sends (issue 10, part 5).

Each parser either returns a well-formed value or raises its own named error; nothing else may
escape (an uncaught exception is a 500 in the app). Examples are bounded and derandomized, so
the suite stays fast and a failure reproduces.
"""

from __future__ import annotations

import io
import uuid
from xml.sax.saxutils import quoteattr

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipr.exports import ImportValidationError, import_csv, import_eaf
from ipr.exports.data import ExportError
from ipr.exports.imports import eaf_tier_names
from ipr.web import limits, ranges, tus

FAST = settings(max_examples=150, deadline=None, derandomize=True)
WEB = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

digits = st.text(alphabet="0123456789", min_size=1, max_size=25)
numberish = st.one_of(
    digits, st.text(max_size=30), st.sampled_from(["²", "１２", "٣", "1e3", " 7", "0x10", "-1"])
)


# --- tus headers ------------------------------------------


@FAST
@given(numberish)
def test_header_number_is_the_ascii_value_or_a_named_400(raw: str) -> None:
    try:
        value = limits.header_number("Upload-Length", raw)
    except limits.BadHeaderNumber as exc:
        assert exc.status == 400
        stripped = raw.strip()
        assert not (stripped.isascii() and stripped.isdigit() and len(stripped) <= 18)
    else:
        assert value == int(raw.strip()) and 0 <= value < 10**18


@FAST
@given(st.text(max_size=80))
def test_upload_metadata_parses_or_names_the_problem(header: str) -> None:
    try:
        meta = tus.parse_metadata(header)
    except tus.TusError as exc:
        assert exc.status == 400
    else:
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items())


@FAST
@given(st.one_of(st.none(), st.text(max_size=60), st.sampled_from(["sha1 ", "md5 @@", "sha256"])))
def test_upload_checksum_parses_or_names_the_problem(header: str | None) -> None:
    try:
        tus._checksum(header)
    except tus.TusError as exc:
        assert exc.status in (400,)


# --- Range ------------------------------------------

range_part = st.one_of(
    st.builds(lambda a, b: f"{a}-{b}", digits, digits),
    st.builds(lambda a: f"{a}-", digits),
    st.builds(lambda b: f"-{b}", digits),
    st.text(alphabet="0123456789-,² ", max_size=12),
)
range_header = st.one_of(
    st.builds(lambda parts: "bytes=" + ",".join(parts), st.lists(range_part, max_size=20)),
    st.text(max_size=40),
)


@FAST
@given(range_header, st.integers(min_value=0, max_value=10_000))
def test_range_parser_returns_merged_ranges_inside_the_file_or_a_named_refusal(header, size):
    try:
        got = ranges.parse_range(header, size)
    except (ranges.RangeNotSatisfiable, ranges.BadRange):
        return
    if got is None:
        return
    assert got and sum(r.length for r in got) <= size
    assert all(0 <= r.start <= r.end < size for r in got)
    assert all(a.end + 1 < b.start for a, b in zip(got, got[1:], strict=False))  # merged


@pytest.fixture
def dyad_id(owner_web, study, db) -> int:
    assert owner_web.post(f"/studies/{study.id}/dyads", {"code": "01"}).status_code == 302
    db.expire_all()
    return study.dyads[0].id


def _sendable(s: str) -> bool:
    """What a client can put in a header at all (the test client refuses line breaks)."""
    return not any(c in s for c in "\r\n\x00")


@WEB
@given(header=range_header.filter(_sendable))
def test_range_requests_never_answer_500(owner_web, rec, header) -> None:
    resp = owner_web.client.get(
        f"/recordings/{rec.id}/media/playable.mp4", headers={"Range": header}
    )
    body = resp.get_data()
    resp.close()
    assert resp.status_code in (200, 206, 400, 416), (header, resp.status_code)
    if resp.status_code == 206 and resp.mimetype != "multipart/byteranges":
        assert len(body) <= 1000


@WEB
@given(length=numberish.filter(_sendable), offset=numberish.filter(_sendable))
def test_tus_headers_never_answer_500(owner_web, dyad_id, length, offset) -> None:
    if owner_web.csrf is None:
        owner_web.get("/login")
    headers = {"Tus-Resumable": "1.0.0", "X-CSRFToken": owner_web.csrf}
    resp = owner_web.client.post(
        f"/dyads/{dyad_id}/uploads",
        headers={**headers, "Upload-Length": length, "Upload-Metadata": "session_label UzE="},
    )
    assert resp.status_code in (201, 400, 413, 507), (length, resp.status_code)
    if resp.status_code == 201:
        resp = owner_web.client.patch(
            resp.headers["Location"],
            data=b"x",
            headers={**headers, "Upload-Offset": offset,
                     "Content-Type": "application/offset+octet-stream"},
        )  # fmt: skip
        assert resp.status_code in (204, 400, 409, 413), (offset, resp.status_code)


# --- imports ------------------------------------------

csv_cell = st.one_of(
    digits,
    st.text(alphabet='0123456789:.,;"= \r\nabc\t-', max_size=12),
    st.sampled_from(["00:01:02.500", "99:99", "²", "1" * 5000, "therapist", "client", "observer"]),
)
csv_header = st.lists(
    st.sampled_from(
        ["start_ms", "end_ms", "start_tc", "end_tc", "peaks_ms", "text", "codes", "rating_hat",
         "lane", "participant", "researcher_codes", "researcher_note", "junk"]
    ),
    min_size=1, max_size=6,
)  # fmt: skip


@st.composite
def csv_files(draw) -> bytes:
    header = draw(csv_header)
    rows = draw(st.lists(st.lists(csv_cell, min_size=0, max_size=7), max_size=6))
    text = ",".join(header) + "\r\n" + "".join(",".join(r) + "\r\n" for r in rows)
    return text.encode("utf-8")


@FAST
@given(st.one_of(csv_files(), st.binary(max_size=300)))
def test_csv_import_returns_moments_or_lists_problems(data: bytes) -> None:
    try:
        moments = import_csv(data, max_rows=50)
    except ImportValidationError as exc:
        assert exc.problems and all(isinstance(p, str) for p in exc.problems)
    else:
        for m in moments:
            assert m.t_ms >= 0 and (m.end_ms is None or m.end_ms >= m.t_ms)


attr = st.one_of(digits, st.text(max_size=8), st.sampled_from(["", "-5", "²", "1" * 40]))


@st.composite
def eaf_files(draw) -> bytes:
    slots = draw(st.lists(attr, min_size=0, max_size=5))
    slot_xml = "".join(
        f"<TIME_SLOT TIME_SLOT_ID={quoteattr(f'ts{i}')} TIME_VALUE={quoteattr(v)}/>"
        for i, v in enumerate(slots)
    )
    anns = draw(st.lists(st.tuples(attr, st.integers(0, 6), st.integers(0, 6), attr), max_size=5))
    ann_xml = "".join(
        f"<ANNOTATION><ALIGNABLE_ANNOTATION ANNOTATION_ID={quoteattr(a)} "
        f"TIME_SLOT_REF1={quoteattr(f'ts{r1}')} TIME_SLOT_REF2={quoteattr(f'ts{r2}')}>"
        f"<ANNOTATION_VALUE>{quoteattr(v)[1:-1]}</ANNOTATION_VALUE>"
        f"</ALIGNABLE_ANNOTATION></ANNOTATION>"
        for a, r1, r2, v in anns
    )
    peaks = draw(st.booleans())
    peak_tier = (
        f'<TIER TIER_ID="client peaks">{ann_xml.replace("m", "m1p")}</TIER>' if peaks else ""
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><ANNOTATION_DOCUMENT><TIME_ORDER>{slot_xml}'
        f'</TIME_ORDER><TIER TIER_ID="client">{ann_xml}</TIER>{peak_tier}</ANNOTATION_DOCUMENT>'
    ).encode()


@FAST
@given(st.one_of(eaf_files(), st.binary(max_size=200)))
def test_eaf_import_returns_moments_or_lists_problems(data: bytes) -> None:
    try:
        names = eaf_tier_names(data)
        moments = import_eaf(data, names[0] if names else "client", max_rows=50)
    except ImportValidationError as exc:
        assert exc.problems and all(isinstance(p, str) for p in exc.problems)
    except ExportError:
        pass
    else:
        for m in moments:
            assert m.t_ms >= 0 and (m.end_ms is None or m.end_ms >= m.t_ms)


@pytest.fixture
def ready(app, db, owner, study, dyad_id):
    from ipr.models import Dyad, Recording

    dyad = db.get(Dyad, dyad_id)
    rec = Recording(
        study_id=study.id, dyad_id=dyad.id, session_label="S1", storage_key=uuid.uuid4().hex,
        status="ready", duration_ms=600_000,
    )  # fmt: skip
    db.add(rec)
    db.commit()
    return rec.id, dyad.participant("client").id


@WEB
@given(data=st.one_of(csv_files(), st.binary(max_size=200)), eaf=st.booleans())
def test_import_requests_never_answer_500(owner_web, ready, data, eaf) -> None:
    rec_id, participant_id = ready
    resp = owner_web.post(
        f"/recordings/{rec_id}/import",
        {"participant_id": str(participant_id),
         "file": (io.BytesIO(data), "f.eaf" if eaf else "f.csv")},
        content_type="multipart/form-data",
    )  # fmt: skip
    resp.close()
    assert resp.status_code in (200, 400, 413, 422), resp.status_code


@pytest.mark.parametrize("value", ["-5", "1e3", "²", "9" * 13])
def test_eaf_time_slot_that_is_not_a_number_is_named(value: str) -> None:
    doc = (
        '<ANNOTATION_DOCUMENT><TIME_ORDER><TIME_SLOT TIME_SLOT_ID="ts1" '
        f'TIME_VALUE="{value}"/></TIME_ORDER><TIER TIER_ID="client"/></ANNOTATION_DOCUMENT>'
    ).encode()
    with pytest.raises(ImportValidationError) as caught:
        import_eaf(doc, "client")
    assert caught.value.problems == [f"time slot ts1: {value!r} is not a time in ms"]
