"""Search across one study's moments and recall-interview transcripts (plain Python, no Flask).

A researcher types a few words; a moment is found when its participant's comment, a
researcher's note, one of its codes (participant's or researcher's; by the code's name or
description) or an utterance of the interview transcript attached to it contains the words
(case-insensitively, as a substring; several words must all occur, each anywhere in those
texts). One statement, bounded by the page's limit, finds the moments shown. The caller has
already checked that the researcher may read the study; that statement is restricted to the
study's id (and reads notes and utterances only of the moments it finds), so nothing of another
study can be found.

Plain ``LIKE`` on ``lower()`` rather than a full-text index: the same SQL on SQLite and
PostgreSQL, no migration, and fast enough for a study of 100 recordings
(``bench/search_scale.py``, docs/benchmarks.md). SQLite's ``lower`` folds ASCII letters only,
so there "Ø" does not find "ø"; PostgreSQL folds every letter.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import Text, cast, func, or_, select
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


def _carries(column, code_ids: set[int]):  # type: ignore[no-untyped-def]
    """A JSON list of code ids (as stored: ``[3, 12]``, or ``[3,12]``) holds one of
    ``code_ids``: a match on the list's text, the same on both databases."""
    text = cast(column, Text)
    shapes = ("[{}]", "[{},%", "%, {},%", "%,{},%", "%, {}]", "%,{}]")
    return or_(*(text.like(shape.format(c)) for c in sorted(code_ids) for shape in shapes))


def _word(study_id: int, word: str, codes: dict[int, Code]):  # type: ignore[no-untyped-def]
    """A live moment of the study holds ``word`` in its comment, a researcher's note, one of
    its codes or an utterance attached to it. Each text is searched once per word (a
    semi-join the database can hash), not once per moment."""
    noted = ResearcherAnnotation.study_id == study_id
    either = [
        _like(Moment.text, word),
        Moment.id.in_(
            select(ResearcherAnnotation.moment_id).where(
                noted, _like(ResearcherAnnotation.note, word)
            )
        ),
        Moment.id.in_(
            select(InterviewUtterance.moment_id).where(
                InterviewUtterance.study_id == study_id,
                InterviewUtterance.moment_id.is_not(None),
                _like(InterviewUtterance.text, word),
            )
        ),
    ]
    coded = _code_ids(codes, word)
    if coded:
        either.append(_carries(Moment.codes, coded))
        either.append(
            Moment.id.in_(
                select(ResearcherAnnotation.moment_id).where(
                    noted, _carries(ResearcherAnnotation.codes, coded)
                )
            )
        )
    return or_(*either)


def _code_ids(codes: dict[int, Code], word: str) -> set[int]:
    return {
        cid
        for cid, c in codes.items()
        if word in c.name.lower() or word in (c.description or "").lower()
    }


def search(db: Session, study_id: int, query: str, *, limit: int = LIMIT) -> Result:
    """The study's live moments matching every word of ``query``: at most ``limit``, in dyad,
    session and time order. One statement finds them (bounded by ``limit``); two more read,
    for the moments shown only, what matched."""
    terms = words(query)
    codes = {c.id: c for c in db.scalars(select(Code).where(Code.study_id == study_id))}
    rows = db.execute(
        select(
            Moment.id, Moment.t_ms, Moment.text, Moment.codes, Recording.id,
            Recording.session_label, Dyad.code, Participant.role, Participant.code,
        )
        .join(RecallSession, RecallSession.id == Moment.recall_session_id)
        .join(Recording, Recording.id == RecallSession.recording_id)
        .join(Dyad, Dyad.id == Recording.dyad_id)
        .join(Participant, Participant.id == RecallSession.participant_id)
        .where(
            Moment.study_id == study_id, Moment.deleted_at.is_(None),
            Recording.study_id == study_id, *(_word(study_id, w, codes) for w in terms),
        )
        .order_by(Dyad.code, Recording.session_label, Recording.id, Moment.t_ms, Moment.id)
        .limit(limit + 1)
    ).all()  # fmt: skip
    shown = [r[0] for r in rows[:limit]]
    notes: dict[int, list[str]] = defaultdict(list)
    r_codes: dict[int, set[int]] = defaultdict(set)
    for mid, note, rc in db.execute(
        select(
            ResearcherAnnotation.moment_id, ResearcherAnnotation.note, ResearcherAnnotation.codes
        ).where(ResearcherAnnotation.moment_id.in_(shown))
    ):
        notes[mid].append((note or "").lower())
        r_codes[mid].update(rc or ())
    said: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for mid, start, text in db.execute(
        select(InterviewUtterance.moment_id, InterviewUtterance.start_ms, InterviewUtterance.text)
        .where(InterviewUtterance.moment_id.in_(shown))
        .order_by(InterviewUtterance.start_ms, InterviewUtterance.id)
    ):
        if any(w in text.lower() for w in terms):
            said[mid].append((start, text))
    hits = []
    for mid, t, text, mcodes, rec_id, label, dyad, role, pcode in rows[:limit]:
        matched = set()
        for w in terms:
            if w in (text or "").lower():
                matched.add("comment")
            if any(w in n for n in notes[mid]):
                matched.add("note")
            if any(w in u.lower() for _, u in said[mid]):
                matched.add("transcript")
            if _code_ids(codes, w) & (set(mcodes or ()) | r_codes[mid]):
                matched.add("code")
        hits.append(
            Hit(
                moment_id=mid, recording_id=rec_id, dyad=dyad, session=label, lane=role,
                participant=pcode, t_ms=t, text=text or "",
                codes=[codes[c].name for c in (mcodes or []) if c in codes],
                matched=matched, said=said[mid],
            )
        )  # fmt: skip
    return Result(query, hits, len(rows) > limit)
