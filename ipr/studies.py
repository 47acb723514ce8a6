"""Studies, their codebook, rating scales, dyads, participants and members."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ipr import audit, figures
from ipr.access import RANK
from ipr.errors import ValidationError
from ipr.models import (
    HAT_LABELS,
    HAT_NAME,
    PARTICIPANT_ROLES,
    SEGMENTATION_STRATEGIES,
    STUDY_ROLES,
    Code,
    Dyad,
    Membership,
    Moment,
    Participant,
    RatingScale,
    Study,
    User,
)

COLOUR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")
CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
# Keys the recall player uses; a codebook shortcut must not shadow them.
RESERVED_SHORTCUTS = set(" m,.")
LANGUAGES = {"en": "English", "nb": "Norsk bokmål"}


def _clean(text: str | None, field: str, *, max_len: int, required: bool = True) -> str:
    value = (text or "").strip()
    if required and not value:
        raise ValidationError(f"The {field} cannot be empty.", field=field)
    if len(value) > max_len:
        raise ValidationError(f"The {field} is longer than {max_len} characters.", field=field)
    return value


def _int(value: Any, field: str, *, lo: int, hi: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValidationError(f"The {field} must be a whole number.", field=field) from None
    if not lo <= number <= hi:
        raise ValidationError(f"The {field} must be between {lo} and {hi}.", field=field)
    return number


def default_hat_scale() -> RatingScale:
    return RatingScale(
        key="hat",
        name=HAT_NAME,
        min_value=1,
        max_value=9,
        labels=dict(HAT_LABELS),
        position=0,
    )


def create_study(db: Session, user: User, name: str, *, ip: str | None = None) -> Study:
    study = Study(name=_clean(name, "name", max_len=200), created_by_id=user.id)
    study.scales.append(default_hat_scale())
    study.memberships.append(Membership(user_id=user.id, role="owner"))
    db.add(study)
    db.flush()
    audit.record(db, "study_created", user=user, study_id=study.id, obj=("study", study.id), ip=ip)
    return study


SETTINGS_FIELDS = {
    "name",
    "description",
    "alignment_tolerance_ms",
    "segmentation_strategy",
    "segment_fixed_ms",
    "segment_min_ms",
    "segment_max_ms",
    "instructions",
    "language",
    "participants_can_code",
    "allow_early_reveal",
    "resume_after_save",
    "require_2fa",
}


def update_study(
    db: Session, study: Study, user: User, data: dict[str, Any], *, ip: str | None = None
) -> Study:
    """Change the given settings; validates everything before changing anything."""
    unknown = set(data) - SETTINGS_FIELDS
    if unknown:
        raise ValidationError(f"Unknown study setting: {', '.join(sorted(unknown))}.")
    changes: dict[str, Any] = {}
    for key, value in data.items():
        if key == "name":
            changes[key] = _clean(value, "name", max_len=200)
        elif key == "description":
            changes[key] = _clean(value, "description", max_len=5000, required=False)
        elif key == "instructions":
            changes[key] = _clean(value, "instructions", max_len=20000, required=False)
        elif key == "alignment_tolerance_ms":
            changes[key] = _int(value, "alignment tolerance (ms)", lo=0, hi=600_000)
        elif key in {"segment_fixed_ms", "segment_min_ms", "segment_max_ms"}:
            changes[key] = _int(value, key.replace("_", " "), lo=1000, hi=4 * 3600 * 1000)
        elif key == "segmentation_strategy":
            if value not in SEGMENTATION_STRATEGIES:
                raise ValidationError(
                    "Segmentation must be one of: " + ", ".join(SEGMENTATION_STRATEGIES) + ".",
                    field=key,
                )
            changes[key] = value
        elif key == "language":
            if value not in LANGUAGES:
                raise ValidationError("Language must be en or nb.", field=key)
            changes[key] = value
        else:
            changes[key] = value in (True, "true", "on", "1", 1)
    if changes.get("require_2fa") and not study.require_2fa and not user.has_2fa:
        raise ValidationError(
            "Turn on two-factor authentication for your own account first (Account page).",
            field="require_2fa",
        )
    lo = changes.get("segment_min_ms", study.segment_min_ms)
    hi = changes.get("segment_max_ms", study.segment_max_ms)
    if lo > hi:
        raise ValidationError(
            "The minimum clip length is above the maximum.", field="segment_min_ms"
        )
    retune = changes.get("alignment_tolerance_ms", study.alignment_tolerance_ms)
    retune = retune != study.alignment_tolerance_ms
    for key, value in changes.items():
        setattr(study, key, value)
    if retune:
        figures.mark_study_stale(db, study.id)
    audit.record(
        db,
        "study_updated",
        user=user,
        study_id=study.id,
        obj=("study", study.id),
        ip=ip,
        details={"fields": sorted(changes)},
    )
    return study


# --- dyads and participants -------------------------------------------------------------------


def _participant_codes(dyad_code: str) -> tuple[str, str]:
    digits = re.findall(r"\d+", dyad_code)
    suffix = digits[-1] if digits else dyad_code
    return f"T{suffix}", f"C{suffix}"


def _check_participant_code(db: Session, study_id: int, code: str, exclude_id: int | None) -> str:
    code = code.strip()
    if not CODE_RE.match(code):
        raise ValidationError(
            "A code is 1–40 letters, digits, '-', '_' or '.', e.g. T05.", field="code"
        )
    clash = db.scalar(
        select(Participant).where(Participant.study_id == study_id, Participant.code == code)
    )
    if clash is not None and clash.id != exclude_id:
        raise ValidationError(f"The code {code} is already used in this study.", field="code")
    return code


NUMBERED_CODE = re.compile(r"^(.*?)(\d+)$")


def suggest_dyad_code(codes: list[str], participant_codes: frozenset[str] = frozenset()) -> str:
    """The next free dyad code in the pattern of the latest numbered one in ``codes`` (oldest
    first): 04 after 01–03, P-010 after P-009, 01 in a study without one. A code whose default
    T/C participant codes are taken is skipped, so the suggestion can be added as it is."""
    taken = set(codes)
    numbered = [m for code in codes if (m := NUMBERED_CODE.match(code))]
    prefix, width, n = "", 2, 1
    if numbered:
        prefix = numbered[-1].group(1)
        highest = max((m.group(2) for m in numbered if m.group(1) == prefix), key=int)
        width, n = len(highest), int(highest) + 1
    while True:
        code = f"{prefix}{n:0{width}d}"
        if code not in taken and not set(_participant_codes(code)) & participant_codes:
            return code
        n += 1


def next_dyad_code(db: Session, study: Study) -> str:
    """The code a new dyad of ``study`` gets when none is given (and the form suggests)."""
    codes = list(db.scalars(select(Dyad.code).where(Dyad.study_id == study.id).order_by(Dyad.id)))
    taken = frozenset(db.scalars(select(Participant.code).where(Participant.study_id == study.id)))
    return suggest_dyad_code(codes, taken)


def create_dyad(
    db: Session,
    study: Study,
    user: User,
    code: str,
    *,
    therapist_code: str | None = None,
    client_code: str | None = None,
    ip: str | None = None,
) -> Dyad:
    """A dyad with its therapist and client, coded e.g. 05 -> T05/C05 unless given."""
    code = code.strip()
    if not CODE_RE.match(code):
        raise ValidationError(
            "A dyad code is 1–40 letters, digits, '-', '_' or '.', e.g. 05.", field="code"
        )
    if db.scalar(select(Dyad).where(Dyad.study_id == study.id, Dyad.code == code)):
        raise ValidationError(f"There is already a dyad {code} in this study.", field="code")
    t_default, c_default = _participant_codes(code)
    t_code = _check_participant_code(db, study.id, therapist_code or t_default, None)
    c_code = _check_participant_code(db, study.id, client_code or c_default, None)
    if t_code == c_code:
        raise ValidationError("Therapist and client need different codes.", field="code")
    dyad = Dyad(study_id=study.id, code=code)
    dyad.participants = [
        Participant(study_id=study.id, role="therapist", code=t_code),
        Participant(study_id=study.id, role="client", code=c_code),
    ]
    db.add(dyad)
    db.flush()
    audit.record(
        db,
        "dyad_created",
        user=user,
        study_id=study.id,
        obj=("dyad", dyad.id),
        ip=ip,
        details={"code": code, "therapist": t_code, "client": c_code},
    )
    return dyad


def update_dyad(db: Session, dyad: Dyad, user: User, data: dict[str, Any], *, ip=None) -> Dyad:
    if "code" in data:
        code = str(data["code"]).strip()
        if not CODE_RE.match(code):
            raise ValidationError(
                "A dyad code is 1–40 letters, digits, '-', '_' or '.'.", field="code"
            )
        clash = db.scalar(select(Dyad).where(Dyad.study_id == dyad.study_id, Dyad.code == code))
        if clash is not None and clash.id != dyad.id:
            raise ValidationError(f"There is already a dyad {code} in this study.", field="code")
        dyad.code = code
    if "notes" in data:
        dyad.notes = _clean(data["notes"], "notes", max_len=5000, required=False)
    audit.record(
        db, "dyad_updated", user=user, study_id=dyad.study_id, obj=("dyad", dyad.id), ip=ip
    )
    return dyad


def rename_participant(
    db: Session, participant: Participant, user: User, code: str, *, ip: str | None = None
) -> Participant:
    old = participant.code
    participant.code = _check_participant_code(db, participant.study_id, code, participant.id)
    audit.record(
        db,
        "participant_renamed",
        user=user,
        study_id=participant.study_id,
        obj=("participant", participant.id),
        ip=ip,
        details={"from": old, "to": participant.code},
    )
    return participant


# --- codebook ---------------------------------------------------------------------------------


def _code_fields(db: Session, study: Study, data: dict[str, Any], code_id: int | None) -> dict:
    out: dict[str, Any] = {}
    if "name" in data:
        name = _clean(data["name"], "code name", max_len=100)
        clash = db.scalar(select(Code).where(Code.study_id == study.id, Code.name == name))
        if clash is not None and clash.id != code_id:
            raise ValidationError(f"The codebook already has a code {name!r}.", field="name")
        out["name"] = name
    if "description" in data:
        out["description"] = _clean(
            data["description"], "description", max_len=2000, required=False
        )
    if "colour" in data:
        colour = str(data["colour"]).strip()
        if not COLOUR_RE.match(colour):
            raise ValidationError("A colour is written like #1f77b4.", field="colour")
        out["colour"] = colour.lower()
    if "shortcut" in data:
        key = (data["shortcut"] or "").strip().lower() or None
        if key is not None:
            if len(key) != 1 or not key.isalnum():
                raise ValidationError("A shortcut is a single letter or digit.", field="shortcut")
            if key in RESERVED_SHORTCUTS:
                raise ValidationError(
                    f"'{key}' is used by the player (M marks a moment); choose another key.",
                    field="shortcut",
                )
            clash = db.scalar(select(Code).where(Code.study_id == study.id, Code.shortcut == key))
            if clash is not None and clash.id != code_id:
                raise ValidationError(
                    f"The shortcut '{key}' is already used by {clash.name!r}.", field="shortcut"
                )
        out["shortcut"] = key
    return out


def add_code(db: Session, study: Study, user: User, data: dict[str, Any], *, ip=None) -> Code:
    fields = _code_fields(db, study, {"name": data.get("name", ""), **data}, None)
    position = len(study.codes)
    code = Code(study_id=study.id, position=position, **fields)
    study.codes.append(code)
    db.flush()
    audit.record(
        db,
        "code_added",
        user=user,
        study_id=study.id,
        obj=("code", code.id),
        ip=ip,
        details={"name": code.name},
    )
    return code


def update_code(db: Session, code: Code, user: User, data: dict[str, Any], *, ip=None) -> Code:
    for key, value in _code_fields(db, code.study, data, code.id).items():
        setattr(code, key, value)
    audit.record(
        db, "code_updated", user=user, study_id=code.study_id, obj=("code", code.id), ip=ip
    )
    return code


def delete_code(db: Session, code: Code, user: User, *, ip=None) -> None:
    audit.record(
        db,
        "code_deleted",
        user=user,
        study_id=code.study_id,
        obj=("code", code.id),
        ip=ip,
        details={"name": code.name},
    )
    db.delete(code)


# --- rating scales ----------------------------------------------------------------------------


def _scale_fields(db: Session, study: Study, data: dict[str, Any], scale_id: int | None) -> dict:
    out: dict[str, Any] = {}
    if "name" in data:
        out["name"] = _clean(data["name"], "scale question", max_len=200)
    if "key" in data:
        key = str(data["key"]).strip().lower()
        if not re.match(r"^[a-z][a-z0-9_]{0,39}$", key):
            raise ValidationError(
                "A scale key is lower-case letters, digits and '_', starting with a letter.",
                field="key",
            )
        clash = db.scalar(
            select(RatingScale).where(RatingScale.study_id == study.id, RatingScale.key == key)
        )
        if clash is not None and clash.id != scale_id:
            raise ValidationError(f"There is already a scale with key {key!r}.", field="key")
        out["key"] = key
    lo = _int(data["min_value"], "lowest value", lo=-100, hi=100) if "min_value" in data else None
    hi = _int(data["max_value"], "highest value", lo=-100, hi=100) if "max_value" in data else None
    if lo is not None:
        out["min_value"] = lo
    if hi is not None:
        out["max_value"] = hi
    if "labels" in data:
        labels = {
            str(int(k)): _clean(v, "label", max_len=100, required=False)
            for k, v in dict(data["labels"]).items()
            if str(v or "").strip()
        }
        out["labels"] = labels
    if "required" in data:
        out["required"] = data["required"] in (True, "true", "on", "1", 1)
    return out


def _check_scale(scale: RatingScale) -> None:
    if scale.min_value >= scale.max_value:
        raise ValidationError("The lowest value must be below the highest.", field="min_value")
    if scale.max_value - scale.min_value > 100:
        raise ValidationError("A scale has at most 101 points.", field="max_value")
    # labels of values the new range no longer has are dropped with the values
    scale.labels = {
        k: v
        for k, v in (scale.labels or {}).items()
        if scale.min_value <= int(k) <= scale.max_value
    }


def add_scale(
    db: Session, study: Study, user: User, data: dict[str, Any], *, ip=None
) -> RatingScale:
    data = {"min_value": 1, "max_value": 7, **data}
    if "key" not in data:
        data["key"] = re.sub(r"[^a-z0-9]+", "_", str(data.get("name", "")).lower()).strip("_")[:40]
        data["key"] = (
            data["key"]
            if re.match(r"^[a-z]", data["key"] or "")
            else f"scale_{len(study.scales) + 1}"
        )
    fields = _scale_fields(db, study, data, None)
    scale = RatingScale(study_id=study.id, position=len(study.scales), **fields)
    _check_scale(scale)
    study.scales.append(scale)
    db.flush()
    audit.record(db, "scale_added", user=user, study_id=study.id, obj=("scale", scale.id), ip=ip)
    return scale


def update_scale(
    db: Session, scale: RatingScale, user: User, data: dict[str, Any], *, ip=None
) -> RatingScale:
    fields = _scale_fields(db, scale.study, data, scale.id)
    for key, value in fields.items():
        setattr(scale, key, value)
    _check_scale(scale)
    audit.record(
        db, "scale_updated", user=user, study_id=scale.study_id, obj=("scale", scale.id), ip=ip
    )
    return scale


def delete_scale(db: Session, scale: RatingScale, user: User, *, ip=None) -> None:
    audit.record(
        db,
        "scale_deleted",
        user=user,
        study_id=scale.study_id,
        obj=("scale", scale.id),
        ip=ip,
        details={"key": scale.key},
    )
    db.delete(scale)


# --- members ----------------------------------------------------------------------------------


def _check_role(role: str) -> str:
    if role not in STUDY_ROLES:
        raise ValidationError("Role must be owner, editor or viewer.", field="role")
    return role


def _owners(study: Study) -> list[Membership]:
    return [m for m in study.memberships if m.role == "owner"]


def add_member(
    db: Session, study: Study, user: User, email: str, role: str, *, ip=None
) -> Membership:
    role = _check_role(role)
    other = db.scalar(select(User).where(User.email == email.strip().lower()))
    if other is None or not other.is_active:
        raise ValidationError(
            "No researcher has that email. Ask an administrator to create the account first.",
            field="email",
        )
    if any(m.user_id == other.id for m in study.memberships):
        raise ValidationError(f"{other.email} is already a member.", field="email")
    membership = Membership(study_id=study.id, user_id=other.id, role=role)
    study.memberships.append(membership)
    db.flush()
    audit.record(
        db,
        "member_added",
        user=user,
        study_id=study.id,
        obj=("user", other.id),
        ip=ip,
        details={"email": other.email, "role": role},
    )
    return membership


def change_member_role(
    db: Session, membership: Membership, user: User, role: str, *, ip=None
) -> Membership:
    role = _check_role(role)
    study = membership.study
    if membership.role == "owner" and role != "owner" and len(_owners(study)) == 1:
        raise ValidationError("A study needs at least one owner; make someone else owner first.")
    old = membership.role
    membership.role = role
    audit.record(
        db,
        "member_role_changed",
        user=user,
        study_id=study.id,
        obj=("user", membership.user_id),
        ip=ip,
        details={"email": membership.user.email, "from": old, "to": role},
    )
    return membership


def remove_member(db: Session, membership: Membership, user: User, *, ip=None) -> None:
    study = membership.study
    if membership.role == "owner" and len(_owners(study)) == 1:
        raise ValidationError("A study needs at least one owner; make someone else owner first.")
    audit.record(
        db,
        "member_removed",
        user=user,
        study_id=study.id,
        obj=("user", membership.user_id),
        ip=ip,
        details={"email": membership.user.email, "role": membership.role},
    )
    study.memberships.remove(membership)


def can(role: str | None, min_role: str) -> bool:
    return role is not None and RANK[role] >= RANK[min_role]


__all__ = ["PARTICIPANT_ROLES", "LANGUAGES"]


# --- deletion ---------------------------------------------------------------------------------


def erase_participant_data(
    db: Session, storage: Any, participant: Participant, user: User, *, ip: str | None = None
) -> int:
    """Remove every recall session, moment, edit and voice note of one participant.

    Returns the number of recall sessions removed. Their codes stay (the dyad stays).
    """
    from ipr.models import RecallSession, VoiceNote

    sessions = db.scalars(
        select(RecallSession).where(RecallSession.participant_id == participant.id)
    ).all()
    for rs in sessions:
        notes = db.scalars(
            select(VoiceNote)
            .join(Moment, VoiceNote.moment_id == Moment.id)
            .where(Moment.recall_session_id == rs.id)
        ).all()
        for note in notes:
            storage.voice_path(rs.recording.storage_key, note.storage_name).unlink(missing_ok=True)
        from ipr import interview_takes  # late: it imports ipr.interview, which imports us

        interview_takes.remove_session_files(db, storage, rs)  # interview audio and takes
        from ipr import figure_files  # late: it reads export data, which reads us

        figure_files.forget(storage, rs.recording.storage_key)  # the picture showed their moments
        figures.mark_stale(db, rs.recording_id, rs.study_id)  # figures without their moments
        db.delete(rs)
    audit.record(
        db, "participant_data_erased", user=user, study_id=participant.study_id,
        obj=("participant", participant.id), ip=ip,
        details={"code": participant.code, "recall_sessions": len(sessions)},
    )  # fmt: skip
    db.commit()
    return len(sessions)


def delete_dyad(
    db: Session, storage: Any, dyad: Dyad, user: User, *, ip: str | None = None
) -> None:
    """Remove a dyad with its participants, recordings, moments and every file made from them."""
    keys = [r.storage_key for r in dyad.recordings]
    audit.record(
        db, "dyad_deleted", user=user, study_id=dyad.study_id, obj=("dyad", dyad.id), ip=ip,
        details={"code": dyad.code, "recordings": len(keys)},
    )  # fmt: skip
    db.delete(dyad)
    db.commit()
    for key in keys:
        storage.remove_recording(key)
