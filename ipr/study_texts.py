"""A study's own texts in every language it offers.

The main language's instructions, code names and scale anchors live in their usual columns;
each other language lives beside them (``Study.texts``, ``Code.translations``,
``RatingScale.translations``). Invitation and reminder texts live in ``Study.texts`` for every
language. A participant reads their own language; a text missing in an offered language is
listed by :func:`missing` so the study page can say so before invitations go out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ipr.models import DEFAULT_STUDY_TEXTS, Code, Participant, RatingScale, Study

LANGUAGES = {"en": "English", "nb": "Norsk bokmål"}
MESSAGE_KINDS = ("invitation", "reminder")

# The app's own words for an e-mail when the study has written none in that language.
DEFAULT_MESSAGES: dict[str, dict[str, tuple[str, str]]] = {
    "en": {
        "invitation": (
            "Your personal link to watch your session",
            "Hello,\n\nYou are invited to watch the recording of your session and mark the "
            "moments that mattered to you. Open your personal link:\n\n{link}\n\n"
            "The link is personal: please do not forward it. You can take a break or stop "
            "at any time; everything you enter is saved at once.\n",
        ),
        "reminder": (
            "Reminder: your personal link to watch your session",
            "Hello,\n\nA friendly reminder: you can still watch the recording of your session "
            "and mark the moments that mattered to you. Here is your personal link:\n\n"
            "{link}\n\nEarlier links no longer work.\n",
        ),
    },
    "nb": {
        "invitation": (
            "Din personlige lenke for å se timen din",
            "Hei,\n\nDu er invitert til å se opptaket av timen din og markere øyeblikkene "
            "som betydde noe for deg. Åpne din personlige lenke:\n\n{link}\n\n"
            "Lenken er personlig: ikke send den videre. Du kan ta en pause eller stoppe når "
            "som helst; alt du skriver, lagres med en gang.\n",
        ),
        "reminder": (
            "Påminnelse: din personlige lenke for å se timen din",
            "Hei,\n\nEn vennlig påminnelse: du kan fortsatt se opptaket av timen din og "
            "markere øyeblikkene som betydde noe for deg. Her er din personlige lenke:\n\n"
            "{link}\n\nTidligere lenker virker ikke lenger.\n",
        ),
    },
}


def languages(study: Study) -> list[str]:
    """The study's languages, its main language first."""
    out = [study.language]
    out += [lang for lang in (study.languages or []) if lang in LANGUAGES and lang not in out]
    return out


def participant_language(study: Study, participant: Participant | None) -> str:
    offered = languages(study)
    if participant is not None and participant.language in offered:
        return participant.language  # type: ignore[return-value]
    return study.language


def _text(study: Study, key: str, lang: str) -> str:
    return ((study.texts or {}).get(key) or {}).get(lang, "") or ""


def instructions(study: Study, lang: str) -> str:
    """Empty means "the app's default instructions" in the main language, and a missing
    translation elsewhere (the page then shows the app's default in that language)."""
    return study.instructions if lang == study.language else _text(study, "instructions", lang)


def code_text(code: Code, lang: str, main: str) -> tuple[str, str]:
    if lang == main:
        return code.name, code.description
    t = (code.translations or {}).get(lang) or {}
    return t.get("name") or "", t.get("description") or ""


def scale_text(scale: RatingScale, lang: str, main: str) -> tuple[str, dict[str, str]]:
    if lang == main:
        return scale.name, dict(scale.labels or {})
    t = (scale.translations or {}).get(lang) or {}
    return t.get("name") or "", {k: v for k, v in (t.get("labels") or {}).items() if v}


def message(study: Study, kind: str, lang: str, link: str) -> tuple[str, str]:
    """Subject and body of an invitation or reminder, with the link in it."""
    subject, default_body = DEFAULT_MESSAGES.get(lang, DEFAULT_MESSAGES["en"])[kind]
    body = _text(study, kind, lang) or default_body
    if "{link}" in body:
        body = body.replace("{link}", link)
    else:
        body = body.rstrip() + "\n\n" + link + "\n"
    return subject, body


def missing(study: Study) -> list[str]:
    """Each study text that a participant reading another offered language would not get."""
    out: list[str] = []
    main = study.language
    for lang in languages(study)[1:]:
        name = LANGUAGES[lang]
        if study.instructions and not _text(study, "instructions", lang):
            out.append(f"Instructions in {name}")
        for code in study.codes:
            n, d = code_text(code, lang, main)
            if not n or (code.description and not d):
                out.append(f"Code “{code.name}” in {name}")
        for scale in study.scales:
            if app_written(scale):
                continue  # the app's own HAT scale is translated with the app
            n, labels = scale_text(scale, lang, main)
            if not n or set(scale.labels or {}) - set(labels):
                out.append(f"Scale “{scale.name}” in {name}")
    for kind in MESSAGE_KINDS:
        written = [lang for lang in languages(study) if _text(study, kind, lang)]
        for lang in languages(study):
            if written and lang not in written:
                out.append(f"{kind.capitalize()} e-mail text in {LANGUAGES[lang]}")
    return out


def app_written(scale: RatingScale) -> bool:
    texts = [scale.name, *(scale.labels or {}).values()]
    return all(t in DEFAULT_STUDY_TEXTS for t in texts)


# --- what the participant page reads -----------------------------------------------------------


@dataclass
class CodeView:
    id: int
    name: str
    description: str
    colour: str
    shortcut: str | None


@dataclass
class ScaleView:
    key: str
    name: str
    min_value: int
    max_value: int
    labels: dict[str, str]
    required: bool


@dataclass
class StudyView:
    """The study as one participant reads it: the same attributes, in their language."""

    id: int
    language: str
    instructions: str
    participants_can_code: bool
    resume_after_save: bool
    codes: list[CodeView] = field(default_factory=list)
    scales: list[ScaleView] = field(default_factory=list)


def for_participant(study: Study, lang: str) -> StudyView:
    """A missing translation falls back to the main language's text for names (the researcher
    was warned), never to nothing, so a participant can still choose a code."""
    main = study.language
    codes = []
    for c in study.codes:
        name, desc = code_text(c, lang, main)
        codes.append(CodeView(c.id, name or c.name, desc, c.colour, c.shortcut))
    scales = []
    for s in study.scales:
        name, labels = scale_text(s, lang, main)
        scales.append(
            ScaleView(s.key, name or s.name, s.min_value, s.max_value,
                      {**(s.labels or {}), **labels}, s.required)
        )  # fmt: skip
    return StudyView(
        id=study.id,
        language=lang,
        instructions=instructions(study, lang),
        participants_can_code=study.participants_can_code,
        resume_after_save=study.resume_after_save,
        codes=codes,
        scales=scales,
    )


def apply(study: Study, data: dict[str, Any]) -> None:
    """Store the translations form: keys ``languages`` (list), ``<kind>.<lang>`` for study texts,
    ``code.<id>.<lang>.name|description``, ``scale.<id>.<lang>.name``, ``scale.<id>.<lang>.<v>``.
    Does not commit."""
    if "languages" in data:
        chosen = [lang for lang in LANGUAGES if lang in data["languages"]]
        study.languages = [study.language] + [x for x in chosen if x != study.language]
    texts: dict[str, dict[str, str]] = {k: dict(v) for k, v in (study.texts or {}).items()}
    for kind in ("instructions", *MESSAGE_KINDS):
        for lang in LANGUAGES:
            key = f"{kind}.{lang}"
            if key in data:
                texts.setdefault(kind, {})[lang] = str(data[key]).strip()[:10_000]
    study.texts = texts
    for code in study.codes:
        tr = {k: dict(v) for k, v in (code.translations or {}).items()}
        for lang in LANGUAGES:
            for part in ("name", "description"):
                key = f"code.{code.id}.{lang}.{part}"
                if key in data:
                    tr.setdefault(lang, {})[part] = str(data[key]).strip()[:2000]
        code.translations = tr
    for scale in study.scales:
        tr2: dict[str, Any] = {k: dict(v) for k, v in (scale.translations or {}).items()}
        for lang in LANGUAGES:
            entry = tr2.setdefault(lang, {})
            key = f"scale.{scale.id}.{lang}.name"
            if key in data:
                entry["name"] = str(data[key]).strip()[:200]
            labels = dict(entry.get("labels") or {})
            for v in range(scale.min_value, scale.max_value + 1):
                key = f"scale.{scale.id}.{lang}.{v}"
                if key in data:
                    labels[str(v)] = str(data[key]).strip()[:200]
            entry["labels"] = labels
        scale.translations = {k: v for k, v in tr2.items() if v.get("name") or v.get("labels")}
