"""Search across one study's moments and recall-interview transcripts (plain Python, no Flask).

A researcher types a few words; a moment is found when its participant's comment, a
researcher's note, one of its codes (participant's or researcher's; by the code's name or
description) or an utterance of the interview transcript attached to it contains the words
(case-insensitively, as a substring; several words must all occur, each anywhere in those
texts). The caller has already checked that the researcher may read the study; every statement
here is restricted to that study's id, so nothing of another study can be found.

Plain ``LIKE`` on ``lower()`` rather than a full-text index: the same SQL on SQLite and
PostgreSQL, no migration, and fast enough for a study of 100 recordings
(``bench/search_scale.py``, docs/benchmarks.md). SQLite's ``lower`` folds ASCII letters only,
so there "Ø" does not find "ø"; PostgreSQL folds every letter.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from ipr.errors import ValidationError
from ipr.models import (
    Code,
    Dyad,
    InterviewUtterance,
    Moment,
    Participant,
    RecallSession,
    Recording,
    ResearcherAnnotation,
)

MIN_CHARS = 2
MAX_CHARS = 200
MAX_WORDS = 8
LIMIT = 50
"""Most moments one search answers (the page says when there were more)."""


@dataclass
class Hit:
    """One moment found, with what matched."""

    moment_id: int
    recording_id: int
    dyad: str
    session: str
    lane: str
    participant: str
    t_ms: int
    text: str
    codes: list[str]
    matched: set[str] = field(default_factory=set)  # comment, note, code, transcript
    said: list[tuple[int, str]] = field(default_factory=list)  # matching utterances


@dataclass
class Result:
    query: str
    hits: list[Hit]
    more: bool  # more moments matched than LIMIT


def words(query: str) -> list[str]:
    """The query's words, lower-cased; a 422 for a query too short or too long."""
    query = " ".join(query.split())
    if len(query) > MAX_CHARS:
        raise ValidationError(f"At most {MAX_CHARS} characters.", field="q")
    found = query.lower().split(" ")[:MAX_WORDS] if query else []
    if len(query) < MIN_CHARS:
        raise ValidationError(f"Type at least {MIN_CHARS} characters.", field="q")
    return found


def _like(column, word: str):  # type: ignore[no-untyped-def]
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return func.lower(column).like(f"%{escaped}%", escape="\\")


def search(db: Session, study_id: int, query: str, *, limit: int = LIMIT) -> Result:
    """The study's live moments matching every word of ``query``: at most ``limit``, in dyad,
    session and time order."""
    terms = words(query)
    # which texts hold each word, per moment: {word: {moment ids}}
    holders: dict[str, set[int]] = {}
    reasons: dict[int, set[str]] = defaultdict(set)
    said: dict[int, dict[int, tuple[int, str]]] = defaultdict(dict)
    live = and_(Moment.study_id == study_id, Moment.deleted_at.is_(None))
    codes = {c.id: c for c in db.scalars(select(Code).where(Code.study_id == study_id))}
    for word in terms:
        ids: set[int] = set()
        for (mid,) in db.execute(select(Moment.id).where(live, _like(Moment.text, word))):
            ids.add(mid)
            reasons[mid].add("comment")
        for (mid,) in db.execute(
            select(ResearcherAnnotation.moment_id).where(
                ResearcherAnnotation.study_id == study_id, _like(ResearcherAnnotation.note, word)
            )
        ):
            ids.add(mid)
            reasons[mid].add("note")
        for uid, mid, start, text in db.execute(
            select(
                InterviewUtterance.id, InterviewUtterance.moment_id, InterviewUtterance.start_ms,
                InterviewUtterance.text,
            ).where(
                InterviewUtterance.study_id == study_id,
                InterviewUtterance.moment_id.is_not(None),
                _like(InterviewUtterance.text, word),
            )
        ):  # fmt: skip
            ids.add(mid)
            reasons[mid].add("transcript")
            said[mid][uid] = (start, text)
        hit_codes = {
            cid
            for cid, c in codes.items()
            if word in c.name.lower() or word in (c.description or "").lower()
        }
        if hit_codes:
            ids |= _coded(db, study_id, hit_codes, reasons)
        holders[word] = ids
    found = set.intersection(*holders.values()) if holders else set()
    if not found:
        return Result(query, [], False)
    rows = db.execute(
        select(
            Moment.id, Moment.t_ms, Moment.text, Moment.codes, Recording.id,
            Recording.session_label, Dyad.code, Participant.role, Participant.code,
        )
        .join(RecallSession, RecallSession.id == Moment.recall_session_id)
        .join(Recording, Recording.id == RecallSession.recording_id)
        .join(Dyad, Dyad.id == Recording.dyad_id)
        .join(Participant, Participant.id == RecallSession.participant_id)
        .where(live, Moment.id.in_(found), Recording.study_id == study_id)
        .order_by(Dyad.code, Recording.session_label, Recording.id, Moment.t_ms, Moment.id)
        .limit(limit + 1)
    ).all()  # fmt: skip
    hits = [
        Hit(
            moment_id=mid, recording_id=rec_id, dyad=dyad, session=label, lane=role,
            participant=pcode, t_ms=t, text=text or "",
            codes=[codes[c].name for c in (mcodes or []) if c in codes],
            matched=reasons[mid], said=sorted(said[mid].values()),
        )
        for mid, t, text, mcodes, rec_id, label, dyad, role, pcode in rows[:limit]
    ]  # fmt: skip
    return Result(query, hits, len(rows) > limit)


def _coded(
    db: Session, study_id: int, code_ids: set[int], reasons: dict[int, set[str]]
) -> set[int]:
    """Live moments carrying one of ``code_ids``, by the participant or by a researcher. The
    code lists are JSON, read in Python: the same on both databases."""
    out: set[int] = set()
    stmt = select(Moment.id, Moment.codes).where(
        Moment.study_id == study_id, Moment.deleted_at.is_(None)
    )
    for mid, mcodes in db.execute(stmt):
        if mcodes and code_ids.intersection(mcodes):
            out.add(mid)
    for mid, rcodes in db.execute(
        select(ResearcherAnnotation.moment_id, ResearcherAnnotation.codes).where(
            ResearcherAnnotation.study_id == study_id
        )
    ):
        if rcodes and code_ids.intersection(rcodes):
            out.add(mid)
    for mid in out:
        reasons[mid].add("code")
    return out
