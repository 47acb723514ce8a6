"""The EAF writer as it was built with lxml elements (before `ipr.exports.eaf` wrote its tiers as
text for speed): the reference the fast writer must match byte for byte."""

from __future__ import annotations

from urllib.parse import quote

from lxml import etree

from ipr.exports import provenance
from ipr.exports.data import LANES, ExportMoment, RecordingContext, format_timecode
from ipr.exports.eaf import (
    _CONSTRAINTS,
    ANSWERS_SUFFIX,
    CODEBOOK_CV,
    CODER_SEPARATOR,
    CODES_SUFFIX,
    FOLLOWUP_SUFFIX,
    INTERVIEW_SUFFIX,
    LANGUAGE,
    PEAK_VALUE,
    PEAKS_SUFFIX,
    POINT_MS,
    PROMPTS_SUFFIX,
    PROVENANCE_PREFIX,
    RATINGS_SUFFIX,
    RESEARCHER_CODES_SUFFIX,
    RESEARCHER_NOTE_SUFFIX,
    RESPONSES_SUFFIX,
    TRANSCRIPT_SUFFIX,
    _alignable,
    _Builder,
    _coding,
    _cve_id,
    _refs,
    interview_value,
    layer_name,
    layers,
    mime_type,
    xml_text,
)
from ipr.exports.table import followup_values


def _lane_tiers(
    ctx: RecordingContext,
    builder: _Builder,
    lane: str,
    moments: list[ExportMoment],
    text: bool,
    role: str | None = None,
):
    code = ctx.lane_code(role or lane)
    codebook = {c.key for c in ctx.study.codebook}
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
    again = {
        m.id: followup_values(ctx.study, m, include_text=text) if m.phase == "blind" else []
        for m in moments
    }
    followup = (
        builder.tier(lane + FOLLOWUP_SUFFIX, "rating", PARENT_REF=lane, PARTICIPANT=code)
        if any(again.values())
        else None
    )
    for moment in moments:
        ann_id = f"m{moment.id}"
        end = moment.end_ms if moment.end_ms is not None else moment.t_ms
        end = max(end, moment.t_ms + POINT_MS)
        ref1 = builder.slot(moment.t_ms)
        ref2 = builder.slot(end)
        _alignable(main, ann_id, ref1, ref2, moment.text if text else "")
        for i, peak in enumerate(sorted(moment.peaks_ms), start=1):
            # Starts exactly at the peak, also at the span's end (an independent tier).
            n = next((k for k, last in enumerate(peak_ends) if peak >= last), len(peak_ends))
            if n == len(peak_tiers):
                name = f"{lane}{PEAKS_SUFFIX} {n + 1}"
                peak_tiers.append(builder.tier(name, "peak", PARTICIPANT=code))
                peak_ends.append(0)
            peak_ends[n] = peak + POINT_MS
            p1, p2 = builder.slot(peak), builder.slot(peak + POINT_MS)
            value = f"{PEAK_VALUE} {format_timecode(peak)}"
            _alignable(peak_tiers[n], f"{ann_id}p{i}", p1, p2, value)
        cv = [(k, _cve_id(k) if k in codebook else "") for k in moment.codes]
        _refs(codes, ann_id, "c", cv)
        rated = [
            (f"{s.key}={moment.ratings[s.key]}", "")
            for s in ctx.study.scales
            if s.key in moment.ratings
        ]
        _refs(ratings, ann_id, "r", rated)
        if asked is not None:
            answered = [
                (f"{p.key}={moment.prompt_answers[p.key]}", "")
                for p in ctx.study.prompts
                if p.key in moment.prompt_answers and (text or p.kind != "text")
            ]
            _refs(asked, ann_id, "q", answered)
        for k, (coder, r_codes, r_note) in enumerate(layers):
            coding = _coding(moment, coder)
            prefix = "x" if k == 0 else f"x{k}_"
            rcv = [(c, _cve_id(c) if c in codebook else "") for c in coding.codes]
            _refs(r_codes, ann_id, prefix, rcv)
            if r_note is not None and coding.note:
                _refs(r_note, ann_id, "n" if k == 0 else f"n{k}_", [(coding.note, "")])
        if stretch is not None and moment.interview_audio_start_ms is not None:
            value = interview_value(moment)
            _refs(stretch, ann_id, "i", [(value, "")])
        if said is not None:
            lines = [(f"[{format_timecode(t)}] {words}", "") for t, _, words in
                     moment.interview_transcript]  # fmt: skip
            _refs(said, ann_id, "u", lines)
        if followup is not None:
            _refs(followup, ann_id, "f", [(f"{k}={v}", "") for k, v in again[moment.id]])


def _response_tiers(
    ctx: RecordingContext, builder: _Builder, lane: str, moments: list[ExportMoment], text: bool,
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
        _refs(answers, f"m{moment.id}", "a", [(value, "")])


def to_eaf(ctx: RecordingContext, *, include_text: bool = True) -> bytes:
    """One recording as an EAF 3.0 document linked to its media by file name."""
    study, recording = ctx.study, ctx.recording
    root = etree.Element(
        "ANNOTATION_DOCUMENT",
        nsmap={"xsi": "http://www.w3.org/2001/XMLSchema-instance"},
        AUTHOR="IPR annotator",
        DATE=study.exported_at.isoformat(timespec="seconds"),
        FORMAT="3.0",
        VERSION="3.0",
    )
    root.set(
        "{http://www.w3.org/2001/XMLSchema-instance}noNamespaceSchemaLocation",
        "http://www.mpi.nl/tools/elan/EAFv3.0.xsd",
    )
    header = etree.SubElement(root, "HEADER", MEDIA_FILE="", TIME_UNITS="milliseconds")
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

    builder = _Builder()
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

    # Time slots are numbered in time order, as ELAN writes them.
    order = sorted(range(len(builder.slots)), key=lambda i: builder.slots[i])
    number = {index: n for n, index in enumerate(order, start=1)}
    time_order = etree.SubElement(root, "TIME_ORDER")
    for index in order:
        etree.SubElement(
            time_order,
            "TIME_SLOT",
            TIME_SLOT_ID=f"ts{number[index]}",
            TIME_VALUE=str(builder.slots[index][0]),
        )
    for tier in builder.tiers:
        for node in tier.iterfind("ANNOTATION/ALIGNABLE_ANNOTATION"):
            for attr in ("TIME_SLOT_REF1", "TIME_SLOT_REF2"):
                node.set(attr, f"ts{number[int(node.get(attr)[1:])]}")
        root.append(tier)

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
    body = etree.tostring(root, encoding="UTF-8", pretty_print=True)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body
