"""The interviewer's prompt sheet and the answers captured at each stop of a recall interview.

Plain Python and SQLAlchemy (no Flask). A study keeps one sheet (``Study.prompt_sheet``; None
means the defaults below). Each prompt has a key, a kind of answer — free ``text``, a rating on
one of the study's ``scale``\\s, or a ``choice`` from a list — and its question in each of the
study's languages. In a researcher-led session the researcher sees the sheet beside the video at
each stop and types the participant's answers; they are stored per moment (``PromptAnswer``).
Participants never see the sheet or the answers: no participant route or page reads them.

The defaults paraphrase Elliott's Brief Structured Recall (Elliott & Shapiro, 1988; the client
event recall form of the BSR manual, v3.51) and Kagan's inquirer leads for Interpersonal
Process Recall: put yourself back into the moment (then, not now), whose words mattered, what
made it helpful or hindering and how much (the HAT scale), its impact, and the inquirer's
questions about feelings, thoughts, the unsaid and the other person.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ipr import audit, recall, study_texts
from ipr.errors import Conflict, ValidationError
from ipr.models import Moment, PromptAnswer, RecallSession, Study, User, utcnow

KINDS = ("text", "scale", "choice")
MAX_PROMPTS = 30
MAX_CHOICES = 20
MAX_QUESTION = 500
MAX_LABEL = 120
MAX_TEXT_ANSWER = 10_000
KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def _choice(value: str, en: str, nb: str) -> dict[str, Any]:
    return {"value": value, "label": {"en": en, "nb": nb}}


# Paraphrased, never quoted: see the module docstring for the sources.
DEFAULT_SHEET: list[dict[str, Any]] = [
    {
        "key": "then",
        "kind": "text",
        "text": {
            "en": "Go back into that moment as it was then, not as you see it now: "
            "what was going on for you?",
            "nb": "Gå tilbake til øyeblikket slik det var da, ikke slik du ser det nå: "
            "hva skjedde i deg?",
        },
    },
    {
        "key": "whose_words",
        "kind": "choice",
        "text": {
            "en": "Whose words here mattered most?",
            "nb": "Hvem sine ord betydde mest her?",
        },
        "choices": [
            _choice("therapist", "The therapist's", "Terapeutens"),
            _choice("own", "My own", "Mine egne"),
            _choice("both", "Both", "Begges"),
            _choice("neither", "Neither", "Ingens"),
        ],
    },
    {
        "key": "why_it_mattered",
        "kind": "text",
        "text": {
            "en": "What made this moment helpful or hindering for you, and what did you get "
            "out of it?",
            "nb": "Hva gjorde dette øyeblikket hjelpsomt eller hemmende for deg, og hva fikk "
            "du ut av det?",
        },
    },
    {
        "key": "helpfulness",
        "kind": "scale",
        "scale": "hat",
        "text": {
            "en": "How helpful or hindering was it?",
            "nb": "Hvor hjelpsomt eller hemmende var det?",
        },
    },
    {
        "key": "impact",
        "kind": "choice",
        "text": {
            "en": "What did it do for you, mainly?",
            "nb": "Hva gjorde det først og fremst for deg?",
        },
        "choices": [
            _choice("clarified", "Made the problem clearer", "Gjorde problemet klarere"),
            _choice("insight", "A new view of myself", "Et nytt syn på meg selv"),
            _choice("solution", "A way forward with the problem", "En vei videre med problemet"),
            _choice("understood", "I felt understood", "Jeg følte meg forstått"),
            _choice("supported", "Reassurance or support", "Trygghet eller støtte"),
            _choice(
                "contact", "Closer contact with the therapist", "Nærmere kontakt med terapeuten"
            ),
            _choice("hindering", "It got in the way", "Det sto i veien"),
            _choice("other", "Something else", "Noe annet"),
        ],
    },
    {
        "key": "feelings",
        "kind": "text",
        "text": {
            "en": "What were you feeling right then? Did you notice it anywhere in your body?",
            "nb": "Hva kjente du akkurat da? Merket du det noe sted i kroppen?",
        },
    },
    {
        "key": "thoughts",
        "kind": "text",
        "text": {
            "en": "What was going through your mind? Did any pictures or memories come up?",
            "nb": "Hva gikk gjennom hodet ditt? Dukket det opp bilder eller minner?",
        },
    },
    {
        "key": "unsaid",
        "kind": "text",
        "text": {
            "en": "Was there something you wanted to say or do then, but did not?",
            "nb": "Var det noe du ville si eller gjøre da, men ikke gjorde?",
        },
    },
    {
        "key": "the_other",
        "kind": "text",
        "text": {
            "en": "How do you think the other person saw you then, and what did you want "
            "from them?",
            "nb": "Hvordan tror du den andre så deg da, og hva ønsket du fra dem?",
        },
    },
]


class PromptProblems(ValidationError):
    """The prompt sheet or the answers have problems; ``problems`` lists each one."""

    code = "invalid_prompts"

    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(message)
        self.problems = problems


# --- the sheet ---------------------------------------------------------------------------------


def defaults(study: Study) -> list[dict[str, Any]]:
    """The Brief Structured Recall sheet fitted to the study: its scale prompt rates on the
    study's HAT scale (else its first scale; none: the prompt is left out)."""
    keys = [s.key for s in study.scales]
    out = []
    for p in copy.deepcopy(DEFAULT_SHEET):
        if p["kind"] == "scale":
            if not keys:
                continue
            if p["scale"] not in keys:
                p["scale"] = keys[0]
        out.append(p)
    return out


def sheet(study: Study) -> list[dict[str, Any]]:
    """The study's sheet as stored, or the defaults when it never wrote one."""
    if study.prompt_sheet is None:
        return defaults(study)
    return copy.deepcopy(study.prompt_sheet)


def is_default(study: Study) -> bool:
    return study.prompt_sheet is None


def _label(texts: Any, lang: str, main: str) -> str:
    texts = texts if isinstance(texts, dict) else {}
    return str(texts.get(lang) or texts.get(main) or "")


def for_language(study: Study, lang: str) -> list[dict[str, Any]]:
    """The sheet as the interviewer reads it in ``lang`` (a missing translation falls back to
    the main language), with each scale prompt's scale spelled out."""
    main = study.language
    scales = {s.key: s for s in study.scales}
    out = []
    for p in sheet(study):
        view: dict[str, Any] = {
            "key": p["key"],
            "kind": p["kind"],
            "question": _label(p.get("text"), lang, main),
        }
        if p["kind"] == "scale":
            s = scales.get(p.get("scale", ""))
            if s is None:
                continue  # its scale was deleted: the sheet page says so
            name, labels = study_texts.scale_text(s, lang, main)
            view["scale"] = {
                "key": s.key,
                "name": name or s.name,
                "min": s.min_value,
                "max": s.max_value,
                "labels": {**(s.labels or {}), **labels},
            }
        if p["kind"] == "choice":
            view["choices"] = [
                {"value": c["value"], "label": _label(c.get("label"), lang, main)}
                for c in p.get("choices", [])
            ]
        out.append(view)
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:40] or "x"


def validate(study: Study, raw: Any) -> list[dict[str, Any]]:
    """A sheet in its stored form, or :class:`PromptProblems` listing every problem."""
    if not isinstance(raw, list):
        raise PromptProblems("The prompt sheet must be a list of prompts.", ["prompts"])
    if len(raw) > MAX_PROMPTS:
        raise PromptProblems(f"At most {MAX_PROMPTS} prompts.", ["prompts"])
    langs = study_texts.languages(study)
    scales = {s.key for s in study.scales}
    problems: list[str] = []
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, p in enumerate(raw):
        where = f"prompts[{i}]"
        if not isinstance(p, dict):
            problems.append(f"{where}: not an object")
            continue
        extra = set(p) - {"key", "kind", "text", "scale", "choices"}
        if extra:
            problems.append(f"{where}: unknown fields {', '.join(sorted(map(str, extra)))}")
        key, kind = p.get("key"), p.get("kind")
        if not isinstance(key, str) or not KEY_RE.match(key):
            problems.append(f"{where}: key must be 1–40 of a–z, 0–9 and _ (starting with a letter)")
        elif key in seen:
            problems.append(f"{where}: key {key!r} is used twice")
        else:
            seen.add(key)
        if kind not in KINDS:
            problems.append(f"{where}: kind must be one of {', '.join(KINDS)}")
        text = p.get("text")
        if not isinstance(text, dict):
            problems.append(f"{where}: text must map each language to its question")
            text = {}
        questions = {}
        for lang, q in text.items():
            if lang not in langs:
                problems.append(f"{where}: {lang!r} is not one of the study's languages")
            elif not isinstance(q, str) or len(q.strip()) > MAX_QUESTION:
                problems.append(f"{where}: the {lang} question must be text of at most "
                                f"{MAX_QUESTION} characters")  # fmt: skip
            elif q.strip():
                questions[lang] = " ".join(q.split())
        if study.language not in questions:
            problems.append(f"{where}: the question in the main language ({study.language}) "
                            "is missing")  # fmt: skip
        item: dict[str, Any] = {"key": key, "kind": kind, "text": questions}
        if kind == "scale":
            if p.get("scale") not in scales:
                problems.append(f"{where}: scale must be one of the study's scales "
                                f"({', '.join(sorted(scales)) or 'none'})")  # fmt: skip
            item["scale"] = p.get("scale")
        elif p.get("scale") is not None:
            problems.append(f"{where}: only a scale prompt names a scale")
        if kind == "choice":
            item["choices"] = _choices(where, p.get("choices"), langs, study.language, problems)
        elif p.get("choices"):
            problems.append(f"{where}: only a choice prompt has choices")
        out.append(item)
    if problems:
        raise PromptProblems("The prompt sheet has problems.", problems)
    return out


def _choices(
    where: str, raw: Any, langs: list[str], main: str, problems: list[str]
) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not 2 <= len(raw) <= MAX_CHOICES:
        problems.append(f"{where}: a choice prompt has 2–{MAX_CHOICES} choices")
        return []
    out = []
    values: set[str] = set()
    for j, c in enumerate(raw):
        at = f"{where}.choices[{j}]"
        if not isinstance(c, dict) or not isinstance(c.get("label"), dict):
            problems.append(f"{at}: a choice is {{value, label: {{language: text}}}}")
            continue
        labels = {}
        for lang, text in c["label"].items():
            if lang in langs and isinstance(text, str) and text.strip():
                if len(text.strip()) > MAX_LABEL:
                    problems.append(f"{at}: a label has at most {MAX_LABEL} characters")
                labels[lang] = " ".join(text.split())
        if main not in labels:
            problems.append(f"{at}: the label in the main language ({main}) is missing")
            continue
        value = c.get("value") or _slug(labels[main])
        if not isinstance(value, str) or not KEY_RE.match(value):
            problems.append(f"{at}: value must be 1–40 of a–z, 0–9 and _")
            continue
        if value in values:
            problems.append(f"{at}: value {value!r} is used twice")
        values.add(value)
        out.append({"value": value, "label": labels})
    return out


def set_sheet(
    db: Session, study: Study, raw: Any, user: User, *, ip: str | None = None
) -> list[dict[str, Any]]:
    """Store a new sheet (audited). Answers already given keep their prompt keys; a prompt
    that is removed keeps its answers in the database and the exports."""
    clean = validate(study, raw)
    study.prompt_sheet = clean
    audit.record(
        db, "prompt_sheet_updated", user=user, study_id=study.id, obj=("study", study.id),
        ip=ip, details={"prompts": [p["key"] for p in clean]},
    )  # fmt: skip
    db.commit()
    return clean


def reset_sheet(db: Session, study: Study, user: User, *, ip: str | None = None) -> None:
    study.prompt_sheet = None
    audit.record(
        db, "prompt_sheet_reset", user=user, study_id=study.id, obj=("study", study.id), ip=ip
    )  # fmt: skip
    db.commit()


def from_form(study: Study, form: dict[str, str], count: int) -> list[dict[str, Any]]:
    """The study page's form as a raw sheet: rows ``p<i>.key|kind|scale|delete``,
    ``p<i>.text.<lang>`` and ``p<i>.choices.<lang>`` (one choice a line, the same order in
    every language). A row with neither key nor question is an unused blank row."""
    langs = study_texts.languages(study)
    out = []
    for i in range(count):
        f = f"p{i}."
        if form.get(f + "delete"):
            continue
        key = (form.get(f + "key") or "").strip()
        texts = {lang: form.get(f"{f}text.{lang}", "") for lang in langs}
        if not key and not any(t.strip() for t in texts.values()):
            continue
        p: dict[str, Any] = {
            "key": key or _slug(texts.get(study.language, "")),
            "kind": form.get(f + "kind", "text"),
            "text": texts,
        }
        if p["kind"] == "scale":
            p["scale"] = form.get(f + "scale")
        if p["kind"] == "choice":
            lines = {
                lang: [x.strip() for x in form.get(f"{f}choices.{lang}", "").splitlines()]
                for lang in langs
            }
            main = [x for x in lines[study.language] if x]
            old = {  # a row that had its key already: its choices so far
                c_["value"]: c_
                for q in (sheet(study) if key else [])
                if q["key"] == key
                for c_ in q.get("choices", [])
            }
            olds = list(old)
            choices = []
            for j, label in enumerate(main):
                labels = {study.language: label}
                for lang in langs[1:]:
                    others = [x for x in lines[lang] if x]
                    if j < len(others):
                        labels[lang] = others[j]
                # an unchanged position keeps its value, so earlier answers still read
                value = olds[j] if j < len(olds) else _slug(label)
                choices.append({"value": value, "label": labels})
            p["choices"] = choices
        out.append(p)
    return out


# --- answers -----------------------------------------------------------------------------------


def answers(db: Session, moment_ids: Any) -> dict[int, dict[str, str]]:
    """Each moment's answers as stored (values are text; a scale's is its number)."""
    out: dict[int, dict[str, str]] = {}
    for a in db.scalars(
        select(PromptAnswer)
        .where(PromptAnswer.moment_id.in_(moment_ids))
        .order_by(PromptAnswer.moment_id, PromptAnswer.id)
    ):
        out.setdefault(a.moment_id, {})[a.prompt_key] = a.value
    return out


def answer_rows(db: Session, moment: Moment) -> list[dict[str, Any]]:
    return [
        {
            "prompt_key": a.prompt_key,
            "value": a.value,
            "answered_at": a.answered_at.isoformat(timespec="seconds") + "Z",
            "by_id": a.by_id,
        }
        for a in db.scalars(
            select(PromptAnswer)
            .where(PromptAnswer.moment_id == moment.id)
            .order_by(PromptAnswer.id)
        )
    ]


def _check_value(prompt: dict[str, Any], value: Any, study: Study) -> str:
    key = prompt["key"]
    if prompt["kind"] == "text":
        if not isinstance(value, str):
            raise ValueError(f"{key}: a text answer")
        if len(value) > MAX_TEXT_ANSWER:
            raise ValueError(f"{key}: at most {MAX_TEXT_ANSWER} characters")
        return value.strip()
    if prompt["kind"] == "scale":
        scale = next((s for s in study.scales if s.key == prompt.get("scale")), None)
        if scale is None:
            raise ValueError(f"{key}: its scale no longer exists")
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{key}: a whole number")
        if not scale.min_value <= value <= scale.max_value:
            raise ValueError(f"{key}: from {scale.min_value} to {scale.max_value}")
        return str(value)
    allowed = [c["value"] for c in prompt.get("choices", [])]
    if value not in allowed:
        raise ValueError(f"{key}: one of {', '.join(allowed)}")
    return str(value)


def save_answers(
    db: Session, rs: RecallSession, moment: Moment, data: Any, user: User, *, retry: bool = True
) -> dict[str, str]:
    """Set (or, with null or an empty text, clear) answers of one stop; other prompts'
    answers stay. Only a researcher-led session has them. After the reveal a blind moment's
    answers change only as a researcher's correction (stamped on the moment and audited), as
    the moment itself does (``recall.check_writable``)."""
    if rs.mode != "researcher":
        raise Conflict("Only a researcher-led recall session has prompt answers.")
    if moment.recall_session_id != rs.id or moment.deleted_at is not None:
        raise ValidationError("That moment is not part of this session.", field="moment_id")
    if not isinstance(data, dict) or not data:
        raise PromptProblems('Send {"answers": {"<prompt key>": value, …}}.', ["answers"])
    study = db.get(Study, rs.study_id)
    prompts = {p["key"]: p for p in sheet(study)}  # type: ignore[arg-type]
    problems: list[str] = []
    clean: dict[str, str | None] = {}
    for key, value in data.items():
        if key not in prompts:
            problems.append(f"{key}: no such prompt on the study's sheet")
            continue
        if value is None or (isinstance(value, str) and not value.strip()):
            clean[key] = None
            continue
        try:
            clean[key] = _check_value(prompts[key], value, study)  # type: ignore[arg-type]
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise PromptProblems("The answers have problems.", problems)
    recall.check_writable(rs, moment, user)
    recall.mark_correction(db, rs, moment, user, "prompt answers")
    existing = {
        a.prompt_key: a
        for a in db.scalars(select(PromptAnswer).where(PromptAnswer.moment_id == moment.id))
    }
    now = utcnow()
    for key, value in clean.items():
        row = existing.get(key)
        if value is None:
            if row is not None:
                db.delete(row)
        elif row is None:
            db.add(
                PromptAnswer(
                    study_id=rs.study_id, moment_id=moment.id, prompt_key=key, value=value,
                    answered_at=now, by_id=user.id,
                )
            )  # fmt: skip
        elif row.value != value:
            row.value, row.answered_at, row.by_id = value, now, user.id
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        if not retry:
            raise
        # another save of the same stop added the same prompt first: apply these over it
        return save_answers(db, rs, moment, data, user, retry=False)
    return answers(db, [moment.id]).get(moment.id, {})


def display(study: Study, stored: dict[str, str], lang: str | None = None) -> list[dict[str, str]]:
    """Answers as a reader sees them, in sheet order: question and the answer's words (a
    choice's label, a rating with its anchor); answers to prompts since removed come last."""
    lang = lang or study.language
    out = []
    seen = set()
    for p in for_language(study, lang):
        if p["key"] not in stored:
            continue
        seen.add(p["key"])
        value = stored[p["key"]]
        words = value
        if p["kind"] == "choice":
            words = next((c["label"] for c in p["choices"] if c["value"] == value), value)
        elif p["kind"] == "scale":
            anchor = p["scale"]["labels"].get(value)
            words = f"{value} ({anchor})" if anchor else value
        out.append({"key": p["key"], "question": p["question"], "answer": words})
    for key, value in stored.items():
        if key not in seen:
            out.append({"key": key, "question": key, "answer": value})
    return out


def export_prompts(study: Study) -> list[tuple[str, str, str]]:
    """(key, question in the main language, kind) of every prompt on the study's sheet (the
    export adds answered prompts since removed: ``ipr.dataset``)."""
    return [(p["key"], _label(p.get("text"), study.language, study.language), p["kind"])
            for p in sheet(study)]  # fmt: skip
