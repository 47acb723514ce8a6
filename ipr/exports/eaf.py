"""ELAN .eaf export (EAF 3.0): a time-aligned tier per lane with child tiers for the rest.

Layout, per lane (`therapist`, `client`):
- `<lane>`: one annotation per moment, value = the moment text. A point moment is an annotation
  `POINT_MS` (1 ms) long, because ELAN cannot hold a zero-length annotation.
- `<lane> codes` and, per researcher coder, `<lane> researcher codes: <coder>` (ANNOTATOR = the
  coder): symbolic subdivisions, one annotation per code, drawn from the study codebook as the
  controlled vocabulary `codebook`.
- `<lane> ratings`: symbolic subdivision, one `scale=value` annotation per rating.
- `<lane> prompt answers` (only when the study has interview prompt answers): symbolic
  subdivision, one `prompt_key=answer` annotation per prompt answered at the stop (free-text
  answers left out with include_text=False).
- `<lane> peaks`: a time-aligned tier of its own (no parent), one `POINT_MS` annotation per peak
  that starts exactly at the peak, value `peak HH:MM:SS.mmm`, id `m<moment>p<n>`. Not an
  Included_In child: a child cannot leave its parent, so a peak at a span's very end could only
  be shown 1 ms early. Two peaks at the same millisecond of one layer (a repeated peak, or the
  end of one moment and the start of the next) would overlap: the second goes onto
  `<lane> peaks 2`, and so on.
- `<lane> researcher note: <coder>`: symbolic association, one tier per coder (left out with
  include_text=False). Data without per-coder codings gets one `<lane> researcher codes` /
  `<lane> researcher note` pair with ANNOTATOR="researcher", as before.
- `<lane> follow-up` (only on a layer where a moment was rated again in the study's follow-up
  pass, docs/followup.md): symbolic subdivision under the moment, so it has the moment's time,
  one annotation per item in the CSV's names and order: `followup_rating_<scale>=<value>`…,
  `followup_comment=<text>` (the comment left out with include_text=False). Not moments: the
  imports never read it as a lane (`FOLLOWUP_TIER`).

ELAN allows no overlapping annotations on a time-aligned tier, so moments of one lane that
overlap go onto extra layers `<lane> 2`, `<lane> 3`, … each with the same child tiers (as the
TextGrid export splits clashes); importing the lane reads its layers back together.

Responses written after the reveal (phase `response`) are not on the blind tier: they get the
same set of tiers under `<lane> responses`, plus `<lane> responses answers`, a symbolic
association whose value names the moment answered (`m12 (client 00:00:01.750)`).
"""

from __future__ import annotations

import re
from urllib.parse import quote

from lxml import etree

from ipr.exports import provenance
from ipr.exports.data import LANES, Coding, ExportMoment, RecordingContext, format_timecode
from ipr.exports.table import followup_values

POINT_MS = 1
PEAK_VALUE = "peak"
CODES_SUFFIX = " codes"
RATINGS_SUFFIX = " ratings"
PEAKS_SUFFIX = " peaks"
PROMPTS_SUFFIX = " prompt answers"
RESEARCHER_CODES_SUFFIX = " researcher codes"
RESEARCHER_NOTE_SUFFIX = " researcher note"
CODER_SEPARATOR = ": "
"""Per-coder tiers are `<lane> researcher codes: <coder>` (ANNOTATOR = the coder)."""
INTERVIEW_SUFFIX = " interview"
"""`<lane> interview`: each stop's stretch of the recall interview audio (interview-audio
times; a symbolic association, since on the video's axis a stop is the one instant the video
stood still at)."""
TRANSCRIPT_SUFFIX = " interview transcript"
"""`<lane> interview transcript`: the utterances said at the stop, `[HH:MM:SS.mmm] text`."""
FOLLOWUP_SUFFIX = " follow-up"
FOLLOWUP_TIER = re.compile(r"(therapist|client)( [2-9]| [1-9]\d+)? follow-up")
"""Our export's follow-up tiers (`client follow-up`, `client 2 follow-up`): never moments."""
RESPONSES_SUFFIX = " responses"
ANSWERS_SUFFIX = " answers"
CODEBOOK_CV = "codebook"
PROVENANCE_PREFIX = "ipr:"
"""HEADER PROPERTY names of the provenance rows (`ipr.exports.provenance.rows`)."""
LANGUAGE = "und"

_MIME_TYPES = {
    "mp4": "video/mp4",
    "m4v": "video/mp4",
    "mov": "video/quicktime",
    "webm": "video/webm",
    "mkv": "video/x-matroska",
    "avi": "video/x-msvideo",
    "mpg": "video/mpeg",
    "mpeg": "video/mpeg",
    "wav": "audio/x-wav",
    "mp3": "audio/mpeg",
    "m4a": "audio/mp4",
    "flac": "audio/flac",
    "ogg": "audio/ogg",
}

_CONSTRAINTS = {
    "Time_Subdivision": "Time subdivision of parent annotation's time interval, no time gaps "
    "allowed within this interval",
    "Symbolic_Subdivision": "Symbolic subdivision of a parent annotation. Annotations refering "
    "to the same parent are ordered",
    "Symbolic_Association": "1-1 association with a parent annotation",
    "Included_In": "Time alignable annotations within the parent annotation's time interval, gaps "
    "are allowed",
}


_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def xml_text(text: str) -> str:
    """Drop the few characters XML 1.0 cannot hold (control codes pasted from other tools)."""
    return _NOT_XML.sub("", text)


def mime_type(filename: str) -> str:
    """The MIME type ELAN expects for the media, from the file extension."""
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    return _MIME_TYPES.get(ext, "video/mp4")


class _Builder:
    """Collects time slots and tiers in document order, as lxml elements (the interview EAF,
    a few dozen annotations; `to_eaf` writes its thousands as text, `_Tiers`)."""

    def __init__(self) -> None:
        self.slots: list[tuple[int, int]] = []  # (time, creation order)
        self.tiers: list[etree._Element] = []

    def slot(self, ms: int) -> int:
        self.slots.append((ms, len(self.slots)))
        return len(self.slots) - 1

    def tier(self, tier_id: str, ling_type: str, **attrs: str) -> etree._Element:
        node = etree.Element("TIER", LINGUISTIC_TYPE_REF=ling_type, TIER_ID=tier_id)
        for key, value in attrs.items():
            node.set(key, value)
        self.tiers.append(node)
        return node


def _alignable(tier: etree._Element, ann_id: str, ref1: int, ref2: int, value: str) -> None:
    annotation = etree.SubElement(tier, "ANNOTATION")
    node = etree.SubElement(
        annotation,
        "ALIGNABLE_ANNOTATION",
        ANNOTATION_ID=ann_id,
        TIME_SLOT_REF1=f"@{ref1}",
        TIME_SLOT_REF2=f"@{ref2}",
    )
    etree.SubElement(node, "ANNOTATION_VALUE").text = xml_text(value)


def _refs(tier: etree._Element, parent_id: str, prefix: str, values: list[tuple[str, str]]):
    """Reference annotations under one parent, chained in order; values are (value, cve_ref)."""
    previous = None
    for i, (value, cve_ref) in enumerate(values, start=1):
        ann_id = f"{parent_id}{prefix}{i}"
        annotation = etree.SubElement(tier, "ANNOTATION")
        node = etree.SubElement(
            annotation, "REF_ANNOTATION", ANNOTATION_ID=ann_id, ANNOTATION_REF=parent_id
        )
        if cve_ref:
            node.set("CVE_REF", cve_ref)
        if previous:
            node.set("PREVIOUS_ANNOTATION", previous)
        etree.SubElement(node, "ANNOTATION_VALUE").text = xml_text(value)
        previous = ann_id


_BODY = "IPR_TIERS"
_BODY_LINE = f"  <{_BODY}/>\n"


class _Tier(list):
    """One tier written as text: (id, slot, slot, value) per alignable annotation (its time
    slots are numbered once all are known) and the finished lines of reference annotations."""

    __slots__ = ("tag",)


class _Tiers:
    """Time slots and tiers of `to_eaf`, in document order, written as text rather than lxml
    elements (a study bundle writes ~100 EAF files of ~600 moments; `_body` gives exactly
    the bytes lxml's pretty printer gave)."""

    def __init__(self) -> None:
        self.slots: list[int] = []  # times in creation order
        self.tiers: list[_Tier] = []

    def slot(self, ms: int) -> int:
        self.slots.append(ms)
        return len(self.slots) - 1

    def tier(self, tier_id: str, ling_type: str, **attrs: str) -> _Tier:
        tier = _Tier()
        tier.tag = "".join(
            f' {k}="{_attr(v)}"'
            for k, v in (("LINGUISTIC_TYPE_REF", ling_type), ("TIER_ID", tier_id), *attrs.items())
        )
        self.tiers.append(tier)
        return tier

    def body(self) -> str:
        """TIME_ORDER and the tiers, two spaces in, as lxml's pretty printer lays them out."""
        slots = self.slots
        # Time slots are numbered in time order (then creation order), as ELAN writes them.
        order = sorted(range(len(slots)), key=slots.__getitem__)
        number = [0] * len(slots)
        parts = ["  <TIME_ORDER>\n" if order else "  <TIME_ORDER/>\n"]
        for n, index in enumerate(order, start=1):
            number[index] = n
            parts.append(f'    <TIME_SLOT TIME_SLOT_ID="ts{n}" TIME_VALUE="{slots[index]}"/>\n')
        if order:
            parts.append("  </TIME_ORDER>\n")
        for tier in self.tiers:
            if not tier:
                parts.append(f"  <TIER{tier.tag}/>\n")
                continue
            parts.append(f"  <TIER{tier.tag}>\n")
            for item in tier:
                if type(item) is str:
                    parts.append(item)
                    continue
                ann_id, ref1, ref2, value = item
                parts.append(
                    "    <ANNOTATION>\n"
                    f'      <ALIGNABLE_ANNOTATION ANNOTATION_ID="{_attr(ann_id)}" '
                    f'TIME_SLOT_REF1="ts{number[ref1]}" TIME_SLOT_REF2="ts{number[ref2]}">\n'
                    f"        <ANNOTATION_VALUE>{_text(value)}</ANNOTATION_VALUE>\n"
                    "      </ALIGNABLE_ANNOTATION>\n    </ANNOTATION>\n"
                )
            parts.append("  </TIER>\n")
        return "".join(parts)


# libxml2's escaping when it serialises (what lxml wrote): text escapes & < > and CR; an
# attribute also the double quote, LF and tab. Characters XML cannot hold are dropped (xml_text).
_TEXT_SPECIAL = re.compile(r"[&<>\r\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_ATTR_SPECIAL = re.compile(r'[&<>"\n\r\t]')
_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
_ATTR_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\n": "&#10;", "\r": "&#13;",
     "\t": "&#9;"}
)  # fmt: skip


def _text(value: str) -> str:
    if _TEXT_SPECIAL.search(value) is None:
        return value
    return xml_text(value).translate(_TEXT_ESCAPES)


def _attr(value: str) -> str:
    if _ATTR_SPECIAL.search(value) is None:
        return value
    return value.translate(_ATTR_ESCAPES)


def _ref_lines(tier: _Tier, parent_id: str, prefix: str, values: list[tuple[str, str]]) -> None:
    """Reference annotations under one parent, chained in order; values are (value, cve_ref)."""
    previous = ""
    parent = _attr(parent_id)
    for i, (value, cve_ref) in enumerate(values, start=1):
        ann_id = f"{parent_id}{prefix}{i}"
        attrs = f'ANNOTATION_ID="{_attr(ann_id)}" ANNOTATION_REF="{parent}"'
        if cve_ref:
            attrs += f' CVE_REF="{_attr(cve_ref)}"'
        if previous:
            attrs += f' PREVIOUS_ANNOTATION="{_attr(previous)}"'
        tier.append(
            f"    <ANNOTATION>\n      <REF_ANNOTATION {attrs}>\n"
            f"        <ANNOTATION_VALUE>{_text(value)}</ANNOTATION_VALUE>\n"
            "      </REF_ANNOTATION>\n    </ANNOTATION>\n"
        )
        previous = ann_id


def _cve_id(key: str) -> str:
    return "cve_" + key


def _lane_tiers(
    ctx: RecordingContext,
    builder: _Tiers,
    lane: str,
    moments: list[ExportMoment],
    text: bool,
    role: str | None = None,
):
    code = ctx.lane_code(role or lane)
    codebook = {c.key for c in ctx.study.codebook}
    scales = ctx.study.scales
    main = builder.tier(lane, "moment", PARTICIPANT=code)
    codes = builder.tier(lane + CODES_SUFFIX, "code", PARENT_REF=lane, PARTICIPANT=code)
    ratings = builder.tier(lane + RATINGS_SUFFIX, "rating", PARENT_REF=lane, PARTICIPANT=code)
    peak_tiers = [builder.tier(lane + PEAKS_SUFFIX, "peak", PARTICIPANT=code)]
    peak_ends = [0]  # where each peaks tier's last annotation ends
    asked = (
        builder.tier(lane + PROMPTS_SUFFIX, "rating", PARENT_REF=lane, PARTICIPANT=code)
        if ctx.study.prompts
        else None
    )
    # One codes tier (and note tier) per researcher coder, ANNOTATOR = the coder; data without
    # per-coder codings keeps the single "researcher" tier of older exports.
    coders = sorted({c.coder for m in moments for c in m.codings}) or [""]
    layers = []
    for coder in coders:
        suffix = f"{CODER_SEPARATOR}{coder}" if coder else ""
        annotator = coder or "researcher"
        r_codes = builder.tier(
            lane + RESEARCHER_CODES_SUFFIX + suffix, "code", PARENT_REF=lane, ANNOTATOR=annotator
        )
        r_note = (
            builder.tier(
                lane + RESEARCHER_NOTE_SUFFIX + suffix, "note", PARENT_REF=lane, ANNOTATOR=annotator
            )
            if text
            else None
        )
        layers.append((coder, r_codes, r_note))
    interviewed = (role or lane) in ctx.recording.interviews
    stretch = said = None
    if interviewed:
        stretch = builder.tier(lane + INTERVIEW_SUFFIX, "note", PARENT_REF=lane, PARTICIPANT=code)
        if text:
            said = builder.tier(
                lane + TRANSCRIPT_SUFFIX, "utterance", PARENT_REF=lane, PARTICIPANT=code
            )
    # the follow-up pass's re-ratings: a tier only on a layer where a moment has one
    again = {
        m.id: followup_values(ctx.study, m, include_text=text) if m.phase == "blind" else []
        for m in moments
    }
    followup = (
        builder.tier(lane + FOLLOWUP_SUFFIX, "rating", PARENT_REF=lane, PARTICIPANT=code)
        if any(again.values())
        else None
    )
    slot = builder.slot
    for moment in moments:
        ann_id = f"m{moment.id}"
        end = moment.end_ms if moment.end_ms is not None else moment.t_ms
        end = max(end, moment.t_ms + POINT_MS)
        main.append((ann_id, slot(moment.t_ms), slot(end), moment.text if text else ""))
        for i, peak in enumerate(sorted(moment.peaks_ms), start=1):
            # Starts exactly at the peak, also at the span's end (an independent tier).
            n = next((k for k, last in enumerate(peak_ends) if peak >= last), len(peak_ends))
            if n == len(peak_tiers):
                name = f"{lane}{PEAKS_SUFFIX} {n + 1}"
                peak_tiers.append(builder.tier(name, "peak", PARTICIPANT=code))
                peak_ends.append(0)
            peak_ends[n] = peak + POINT_MS
            p1, p2 = slot(peak), slot(peak + POINT_MS)
            peak_tiers[n].append((f"{ann_id}p{i}", p1, p2, f"{PEAK_VALUE} {format_timecode(peak)}"))
        if moment.codes:
            cv = [(k, _cve_id(k) if k in codebook else "") for k in moment.codes]
            _ref_lines(codes, ann_id, "c", cv)
        if moment.ratings:
            rated = [(f"{s.key}={moment.ratings[s.key]}", "") for s in scales
                     if s.key in moment.ratings]  # fmt: skip
            _ref_lines(ratings, ann_id, "r", rated)
        if asked is not None:
            answered = [
                (f"{p.key}={moment.prompt_answers[p.key]}", "")
                for p in ctx.study.prompts
                if p.key in moment.prompt_answers and (text or p.kind != "text")
            ]
            _ref_lines(asked, ann_id, "q", answered)
        for k, (coder, r_codes, r_note) in enumerate(layers):
            coding = _coding(moment, coder)
            if coding.codes:
                prefix = "x" if k == 0 else f"x{k}_"
                rcv = [(c, _cve_id(c) if c in codebook else "") for c in coding.codes]
                _ref_lines(r_codes, ann_id, prefix, rcv)
            if r_note is not None and coding.note:
                _ref_lines(r_note, ann_id, "n" if k == 0 else f"n{k}_", [(coding.note, "")])
        if stretch is not None and moment.interview_audio_start_ms is not None:
            _ref_lines(stretch, ann_id, "i", [(interview_value(moment), "")])
        if said is not None and moment.interview_transcript:
            lines = [(f"[{format_timecode(t)}] {words}", "") for t, _, words in
                     moment.interview_transcript]  # fmt: skip
            _ref_lines(said, ann_id, "u", lines)
        if followup is not None:
            _ref_lines(followup, ann_id, "f", [(f"{k}={v}", "") for k, v in again[moment.id]])


def interview_value(moment: ExportMoment) -> str:
    """`interview 00:00:02.000–00:00:04.000`: the stop's stretch on the interview audio."""
    start, end = moment.interview_audio_start_ms, moment.interview_audio_end_ms
    return f"interview {format_timecode(start or 0)}–{format_timecode(end or 0)}"


def _coding(moment: ExportMoment, coder: str) -> Coding:
    """This coder's layer on the moment ("" = the merged layer of data without codings)."""
    if not coder:
        return Coding("", moment.researcher_codes, moment.researcher_note)
    for coding in moment.codings:
        if coding.coder == coder:
            return coding
    return Coding(coder)


def layers(moments: list[ExportMoment]) -> list[list[ExportMoment]]:
    """ELAN allows no overlap on a time-aligned tier: a moment that clashes with one before it
    goes to the first extra layer where it fits (`therapist 2`, …), as in the TextGrid export.
    A moment covers [t_ms, end) with at least `POINT_MS`; touching ends do not clash."""
    out: list[list[ExportMoment]] = []
    ends: list[int] = []
    for moment in sorted(moments, key=lambda m: (m.t_ms, m.end_ms or m.t_ms, m.id)):
        end = max(moment.end_ms if moment.end_ms is not None else moment.t_ms,
                  moment.t_ms + POINT_MS)  # fmt: skip
        for n, last_end in enumerate(ends):
            if moment.t_ms >= last_end:
                out[n].append(moment)
                ends[n] = end
                break
        else:
            out.append([moment])
            ends.append(end)
    return out or [[]]


def layer_name(name: str, n: int) -> str:
    """The tier of layer n (from 1): `therapist`, `therapist 2`, …"""
    return name if n == 1 else f"{name} {n}"


def _response_tiers(
    ctx: RecordingContext, builder: _Tiers, lane: str, moments: list[ExportMoment], text: bool,
    name: str,
) -> None:  # fmt: skip
    """A participant's responses after the reveal, kept off the blind tier: `<lane> responses`
    with the same child tiers, and `<lane> responses answers` naming the moment answered."""
    _lane_tiers(ctx, builder, name, moments, text, role=lane)
    answers = builder.tier(
        name + ANSWERS_SUFFIX, "note", PARENT_REF=name, PARTICIPANT=ctx.lane_code(lane)
    )
    for moment in moments:
        if moment.responds_to_id is None:
            continue  # a second-look moment answers nothing
        other = ctx.recording.answered(moment)
        value = f"m{moment.responds_to_id}"
        if other is not None:
            value += f" ({other.lane} {format_timecode(other.t_ms)})"
        _ref_lines(answers, f"m{moment.id}", "a", [(value, "")])


def _document(ctx: RecordingContext) -> tuple[etree._Element, etree._Element]:
    """An EAF 3.0 root, dated the export, and its empty HEADER (milliseconds)."""
    root = etree.Element(
        "ANNOTATION_DOCUMENT",
        nsmap={"xsi": "http://www.w3.org/2001/XMLSchema-instance"},
        AUTHOR="IPR annotator",
        DATE=ctx.study.exported_at.isoformat(timespec="seconds"),
        FORMAT="3.0",
        VERSION="3.0",
    )
    root.set(
        "{http://www.w3.org/2001/XMLSchema-instance}noNamespaceSchemaLocation",
        "http://www.mpi.nl/tools/elan/EAFv3.0.xsd",
    )
    return root, etree.SubElement(root, "HEADER", MEDIA_FILE="", TIME_UNITS="milliseconds")


def to_eaf(ctx: RecordingContext, *, include_text: bool = True) -> bytes:
    """One recording as an EAF 3.0 document linked to its media by file name."""
    study, recording = ctx.study, ctx.recording
    root, header = _document(ctx)
    url = "./" + quote(recording.media_filename)
    etree.SubElement(
        header,
        "MEDIA_DESCRIPTOR",
        MEDIA_URL=url,
        MIME_TYPE=mime_type(recording.media_filename),
        RELATIVE_MEDIA_URL=url,
    )
    # Each participant's recall interview audio as a further medium (ELAN plays every linked
    # medium on the document's one time axis, shifted by its TIME_ORIGIN; see
    # provenance "interview_time_origin" for what that offset can and cannot align).
    for lane in LANES:
        media = recording.interviews.get(lane)
        if media is None or not include_text:
            continue  # the conversation is free speech: left out with the free text
        link = "./" + quote(media.media_filename)
        node = etree.SubElement(
            header, "MEDIA_DESCRIPTOR", MEDIA_URL=link, MIME_TYPE=mime_type(media.media_filename),
            RELATIVE_MEDIA_URL=link,
        )  # fmt: skip
        if media.time_origin_ms is not None:
            node.set("TIME_ORIGIN", str(media.time_origin_ms))
    for name, value in (
        ("study", study.name),
        ("dyad", ctx.dyad.code),
        ("session", recording.session_label),
        *((PROVENANCE_PREFIX + k, v) for k, v in provenance.rows(study, recording_id=recording.id)),
    ):
        etree.SubElement(header, "PROPERTY", NAME=name).text = xml_text(value)

    builder = _Tiers()
    moments = recording.sorted_moments()
    for lane in LANES:
        lane_moments = [m for m in moments if m.lane == lane and m.phase == "blind"]
        for n, layer in enumerate(layers(lane_moments), start=1):
            _lane_tiers(ctx, builder, layer_name(lane, n), layer, include_text, role=lane)
    for lane in LANES:
        responses = [m for m in moments if m.lane == lane and m.phase == "response"]
        if responses:
            for n, layer in enumerate(layers(responses), start=1):
                name = layer_name(lane + RESPONSES_SUFFIX, n)
                _response_tiers(ctx, builder, lane, layer, include_text, name)
    etree.SubElement(root, _BODY)  # where the time slots and tiers go (written as text)

    for ling_id, attrs in (
        ("moment", {"TIME_ALIGNABLE": "true"}),
        (
            "code",
            {
                "CONSTRAINTS": "Symbolic_Subdivision",
                "CONTROLLED_VOCABULARY_REF": CODEBOOK_CV,
                "TIME_ALIGNABLE": "false",
            },
        ),
        ("rating", {"CONSTRAINTS": "Symbolic_Subdivision", "TIME_ALIGNABLE": "false"}),
        ("peak", {"TIME_ALIGNABLE": "true"}),
        ("note", {"CONSTRAINTS": "Symbolic_Association", "TIME_ALIGNABLE": "false"}),
        ("utterance", {"CONSTRAINTS": "Symbolic_Subdivision", "TIME_ALIGNABLE": "false"}),
    ):
        etree.SubElement(
            root,
            "LINGUISTIC_TYPE",
            GRAPHIC_REFERENCES="false",
            LINGUISTIC_TYPE_ID=ling_id,
            **attrs,
        )
    etree.SubElement(
        root,
        "LANGUAGE",
        LANG_DEF="http://cdb.iso.org/lg/CDB-00130975-001",
        LANG_ID=LANGUAGE,
        LANG_LABEL="undetermined (und)",
    )
    for stereotype, description in _CONSTRAINTS.items():
        etree.SubElement(root, "CONSTRAINT", DESCRIPTION=description, STEREOTYPE=stereotype)
    vocabulary = etree.SubElement(root, "CONTROLLED_VOCABULARY", CV_ID=CODEBOOK_CV)
    etree.SubElement(vocabulary, "DESCRIPTION", LANG_REF=LANGUAGE).text = xml_text(
        f"Codebook of the study {study.name}"
    )
    for code in study.codebook:
        entry = etree.SubElement(vocabulary, "CV_ENTRY_ML", CVE_ID=_cve_id(code.key))
        value = etree.SubElement(
            entry,
            "CVE_VALUE",
            DESCRIPTION=xml_text(code.description or code.name),
            LANG_REF=LANGUAGE,
        )
        value.text = xml_text(code.key)
    head, tail = etree.tostring(root, encoding="unicode", pretty_print=True).split(_BODY_LINE)
    body = head + builder.body() + tail
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body.encode("utf-8")


STOPS_TIER = "stops"
TRANSCRIPT_TIER = "transcript"


def _spans_layers(items: list[tuple[int, int, str, str]]) -> list[list[tuple[int, int, str, str]]]:
    """(start, end, id, value) onto layers without overlap (ELAN's rule for a time-aligned
    tier), each item on the first layer where it fits; touching ends do not clash."""
    out: list[list[tuple[int, int, str, str]]] = []
    ends: list[int] = []
    for item in sorted(items):
        for n, last in enumerate(ends):
            if item[0] >= last:
                out[n].append(item)
                ends[n] = item[1]
                break
        else:
            out.append([item])
            ends.append(item[1])
    return out or [[]]


def to_interview_eaf(ctx: RecordingContext, lane: str, *, include_text: bool = True) -> bytes:
    """One participant's recall interview as an EAF 3.0 document on the interview audio's own
    time axis: the audio is the master medium, so ELAN plays each stop's stretch of the
    conversation where its annotation lies.

    - `stops`: one annotation per stop, its stretch of the interview audio (from the pause or
      mark to the next play), value `m<id> · <lane> HH:MM:SS.mmm (video) · <moment text>`;
    - `transcript`: the utterances attached to the stops, at their own times (absent without
      free text). An utterance without an end lasts to its stop's end.

    Overlaps (two stops logged at one pause; overlapping cues) go to `stops 2`, `transcript 2`,
    … The session video is not linked: while the conversation runs the video stands still, so
    no constant offset aligns it; each stop names its video time instead."""
    study, recording = ctx.study, ctx.recording
    media = recording.interviews[lane]
    code = ctx.lane_code(lane)
    root, header = _document(ctx)
    url = "./" + quote(media.media_filename)
    etree.SubElement(
        header, "MEDIA_DESCRIPTOR", MEDIA_URL=url, MIME_TYPE=mime_type(media.media_filename),
        RELATIVE_MEDIA_URL=url,
    )  # fmt: skip
    for name, value in (
        ("study", study.name),
        ("dyad", ctx.dyad.code),
        ("session", recording.session_label),
        ("participant", code),
        ("time axis", "the recall interview audio (ms); video times are in the stop values"),
        *((PROVENANCE_PREFIX + k, v) for k, v in provenance.rows(study, recording_id=recording.id)),
    ):
        etree.SubElement(header, "PROPERTY", NAME=name).text = xml_text(value)

    stops, said = [], []
    for m in recording.sorted_moments():
        if m.lane != lane or m.interview_audio_start_ms is None:
            continue
        start = m.interview_audio_start_ms
        end = max(m.interview_audio_end_ms or start, start + POINT_MS)
        value = f"m{m.id} · {lane} {format_timecode(m.t_ms)}"
        if include_text and m.text:
            value += f" · {m.text}"
        stops.append((start, end, f"s{m.id}", value))
        for k, (u_start, u_end, words) in enumerate(m.interview_transcript, start=1):
            stop = max(u_end if u_end is not None else end, u_start + POINT_MS)
            said.append((u_start, stop, f"s{m.id}u{k}", words))
    builder = _Builder()
    groups = [(STOPS_TIER, stops)] + ([(TRANSCRIPT_TIER, said)] if include_text else [])
    for name, items in groups:
        for n, layer in enumerate(_spans_layers(items), start=1):
            tier = builder.tier(layer_name(name, n), "interview", PARTICIPANT=code)
            for start, end, ann_id, value in layer:
                _alignable(tier, ann_id, builder.slot(start), builder.slot(end), value)
    order = sorted(range(len(builder.slots)), key=lambda i: builder.slots[i])
    number = {index: n for n, index in enumerate(order, start=1)}
    time_order = etree.SubElement(root, "TIME_ORDER")
    for index in order:
        etree.SubElement(
            time_order, "TIME_SLOT", TIME_SLOT_ID=f"ts{number[index]}",
            TIME_VALUE=str(builder.slots[index][0]),
        )  # fmt: skip
    for tier in builder.tiers:
        for node in tier.iterfind("ANNOTATION/ALIGNABLE_ANNOTATION"):
            for attr in ("TIME_SLOT_REF1", "TIME_SLOT_REF2"):
                node.set(attr, f"ts{number[int(node.get(attr)[1:])]}")
        root.append(tier)
    etree.SubElement(
        root, "LINGUISTIC_TYPE", GRAPHIC_REFERENCES="false", LINGUISTIC_TYPE_ID="interview",
        TIME_ALIGNABLE="true",
    )  # fmt: skip
    etree.SubElement(
        root,
        "LANGUAGE",
        LANG_DEF="http://cdb.iso.org/lg/CDB-00130975-001",
        LANG_ID=LANGUAGE,
        LANG_LABEL="undetermined (und)",
    )
    body = etree.tostring(root, encoding="UTF-8", pretty_print=True)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body
