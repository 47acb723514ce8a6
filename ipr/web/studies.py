"""The researcher's workspace: studies, dyads, codebook, scales, instructions, members."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, redirect, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.attributes import set_committed_value

from ipr import audit, studies, study_texts
from ipr.access import get_or_404, require_role, role_in, scoped
from ipr.errors import NotFound, ValidationError
from ipr.models import Code, Dyad, Membership, Participant, RatingScale, Study
from ipr.web.context import client_ip, db, login_required, navigate, render, user

bp = Blueprint("studies", __name__)

SECTIONS = {
    "dyads": "studies/_dyads.html",
    "codebook": "studies/_codebook.html",
    "scales": "studies/_scales.html",
    "instructions": "studies/_instructions.html",
    "texts": "studies/_texts.html",
    "prompts": "studies/_prompts.html",
    "settings": "studies/_settings.html",
    "followup": "studies/_followup.html",
    "members": "studies/_members.html",
}


def _preload_dyads(study: Study) -> None:
    """The dyads with their participants and recordings in three statements, not two per dyad
    (the study page lists them all)."""
    dyads = (
        db()
        .scalars(
            select(Dyad)
            .where(Dyad.study_id == study.id)
            .order_by(Dyad.code)
            .options(selectinload(Dyad.participants), selectinload(Dyad.recordings))
        )
        .all()
    )
    set_committed_value(study, "dyads", list(dyads))


def _study_ctx(study: Study, **extra: Any) -> dict[str, Any]:
    role = role_in(db(), user(), study.id)
    _preload_dyads(study)
    ctx = {
        "study": study,
        "role": role,
        "can_edit": studies.can(role, "editor"),
        "is_owner": role == "owner",
        "languages": studies.LANGUAGES,
        "strategies": studies.SEGMENTATION_STRATEGIES,
        "roles": studies.STUDY_ROLES,
        "offered": study_texts.languages(study),
        "missing_texts": study_texts.missing(study),
        "app_scales": {sc.id for sc in study.scales if study_texts.app_written(sc)},
        "next_dyad_code": studies.next_dyad_code(db(), study),
    }
    ctx.update(extra)
    return ctx


def _section(study: Study, name: str, status: int = 200, **extra: Any) -> Any:
    """Render one section: alone for htmx, inside the study page otherwise."""
    ctx = _study_ctx(study, **extra)
    if request.method == "POST" and not request.htmx and status < 400:
        return redirect(url_for("studies.show", study_id=study.id) + f"#{name}")
    return render("studies/study.html", SECTIONS[name], status=status, section=name, **ctx)


def _edit(study_id: int, section: str, action: Any, target: str | None = None) -> Any:
    """Run a change as an editor; a validation error re-renders the section with its message.
    ``target`` names the input the change came from: it shows *Saved*, or is outlined."""
    study = get_or_404(db(), Study, study_id, user(), "editor")
    try:
        action(study)
        db().commit()
    except ValidationError as exc:
        db().rollback()
        study = get_or_404(db(), Study, study_id, user(), "editor")
        return _section(
            study, section, status=422, error=exc.message, error_field=exc.field,
            error_target=target,
        )  # fmt: skip
    return _section(study, section, saved_target=target)


@bp.get("/")
@login_required
def home() -> Any:
    return redirect(url_for("studies.index"))


@bp.get("/studies")
@login_required
def index() -> Any:
    rows = db().scalars(scoped(select(Study), Study, user()).order_by(Study.name)).all()
    return render("studies/index.html", "studies/_list.html", studies_=rows)


@bp.post("/studies")
@login_required
def create() -> Any:
    try:
        study = studies.create_study(db(), user(), request.form.get("name", ""), ip=client_ip())
        db().commit()
    except ValidationError as exc:
        db().rollback()
        rows = db().scalars(scoped(select(Study), Study, user()).order_by(Study.name)).all()
        return render(
            "studies/index.html", "studies/_list.html", status=422, studies_=rows, error=exc.message
        )
    return navigate(url_for("studies.show", study_id=study.id))  # the new study opens at once


@bp.get("/studies/<int:study_id>")
@login_required
def show(study_id: int) -> Any:
    study = get_or_404(db(), Study, study_id, user())
    return render("studies/study.html", **_study_ctx(study))


@bp.get("/studies/<int:study_id>/<section>")
@login_required
def section(study_id: int, section: str) -> Any:
    study = get_or_404(db(), Study, study_id, user())
    if section not in SECTIONS:
        raise NotFound()
    return _section(study, section)


@bp.get("/studies/<int:study_id>/audit")
@login_required
def audit_log(study_id: int) -> Any:
    study = get_or_404(db(), Study, study_id, user())
    require_role(db(), user(), study.id, "owner")
    events = audit.events_for_study(db(), study.id)
    return render("studies/audit.html", "studies/_audit.html", events=events, **_study_ctx(study))


# --- dyads ------------------------------------------------------------------------------------


@bp.post("/studies/<int:study_id>/dyads")
@login_required
def add_dyad(study_id: int) -> Any:
    f = request.form
    return _edit(
        study_id,
        "dyads",
        lambda s: studies.create_dyad(
            db(),
            s,
            user(),
            f.get("code", ""),
            therapist_code=f.get("therapist_code") or None,
            client_code=f.get("client_code") or None,
            ip=client_ip(),
        ),
    )


@bp.post("/dyads/<int:dyad_id>")
@login_required
def update_dyad(dyad_id: int) -> Any:
    dyad = get_or_404(db(), Dyad, dyad_id, user(), "editor")
    return _edit(
        dyad.study_id,
        "dyads",
        lambda s: studies.update_dyad(db(), dyad, user(), dict(request.form), ip=client_ip()),
        f"dyad-{dyad.id}",
    )


@bp.post("/participants/<int:participant_id>")
@login_required
def rename_participant(participant_id: int) -> Any:
    p = get_or_404(db(), Participant, participant_id, user(), "editor")
    return _edit(
        p.study_id,
        "dyads",
        lambda s: studies.rename_participant(
            db(), p, user(), request.form.get("code", ""), ip=client_ip()
        ),
        f"participant-{p.id}",
    )


# --- codebook ---------------------------------------------------------------------------------


@bp.post("/studies/<int:study_id>/codes")
@login_required
def add_code(study_id: int) -> Any:
    return _edit(
        study_id,
        "codebook",
        lambda s: studies.add_code(db(), s, user(), dict(request.form), ip=client_ip()),
    )


@bp.post("/codes/<int:code_id>")
@login_required
def update_code(code_id: int) -> Any:
    code = get_or_404(db(), Code, code_id, user(), "editor")
    return _edit(
        code.study_id,
        "codebook",
        lambda s: studies.update_code(db(), code, user(), dict(request.form), ip=client_ip()),
        f"code-{code.id}",
    )


@bp.post("/codes/<int:code_id>/delete")
@login_required
def delete_code(code_id: int) -> Any:
    code = get_or_404(db(), Code, code_id, user(), "editor")
    return _edit(
        code.study_id, "codebook", lambda s: studies.delete_code(db(), code, user(), ip=client_ip())
    )


# --- rating scales ----------------------------------------------------------------------------


def _scale_form() -> dict[str, Any]:
    f = request.form
    data: dict[str, Any] = {
        k: f[k] for k in ("name", "key", "min_value", "max_value") if k in f and f[k] != ""
    }
    labels = {k[6:]: v for k, v in f.items() if k.startswith("label_")}
    if labels:
        data["labels"] = labels
    if "name" in f:
        data["required"] = f.get("required") == "on"
    return data


@bp.post("/studies/<int:study_id>/scales")
@login_required
def add_scale(study_id: int) -> Any:
    return _edit(
        study_id,
        "scales",
        lambda s: studies.add_scale(db(), s, user(), _scale_form(), ip=client_ip()),
    )


@bp.post("/scales/<int:scale_id>")
@login_required
def update_scale(scale_id: int) -> Any:
    scale = get_or_404(db(), RatingScale, scale_id, user(), "editor")
    return _edit(
        scale.study_id,
        "scales",
        lambda s: studies.update_scale(db(), scale, user(), _scale_form(), ip=client_ip()),
    )


@bp.post("/scales/<int:scale_id>/delete")
@login_required
def delete_scale(scale_id: int) -> Any:
    scale = get_or_404(db(), RatingScale, scale_id, user(), "editor")
    return _edit(
        scale.study_id,
        "scales",
        lambda s: studies.delete_scale(db(), scale, user(), ip=client_ip()),
    )


# --- instructions and settings ----------------------------------------------------------------


@bp.post("/studies/<int:study_id>/instructions")
@login_required
def save_instructions(study_id: int) -> Any:
    data = {k: request.form[k] for k in ("instructions", "language") if k in request.form}
    return _edit(
        study_id,
        "instructions",
        lambda s: studies.update_study(db(), s, user(), data, ip=client_ip()),
    )


@bp.post("/studies/<int:study_id>/texts")
@login_required
def save_texts(study_id: int) -> Any:
    """The study's languages and its texts in each of them (audited)."""
    data: dict[str, Any] = {k: v for k, v in request.form.items() if k != "csrf_token"}
    data["languages"] = request.form.getlist("languages")

    def action(study: Study) -> None:
        study_texts.apply(study, data)
        audit.record(
            db(), "study_texts_updated", user=user(), study_id=study.id,
            obj=("study", study.id), ip=client_ip(), details={"languages": study.languages},
        )  # fmt: skip

    return _edit(study_id, "texts", action)


BOOL_SETTINGS = ("participants_can_code", "allow_early_reveal", "resume_after_save", "require_2fa")


@bp.post("/studies/<int:study_id>/settings")
@login_required
def save_settings(study_id: int) -> Any:
    f = request.form
    data: dict[str, Any] = {
        k: f[k]
        for k in (
            "name",
            "description",
            "alignment_tolerance_ms",
            "segmentation_strategy",
            "segment_fixed_ms",
            "segment_min_ms",
            "segment_max_ms",
        )
        if k in f
    }
    for key in ("alignment_tolerance_ms", "segment_fixed_ms", "segment_min_ms", "segment_max_ms"):
        # the form speaks seconds; the model keeps integer milliseconds
        if key in data:
            try:
                data[key] = round(float(data[key]) * 1000)
            except ValueError:
                data[key] = data[key]
    for key in BOOL_SETTINGS:
        data[key] = f.get(key) == "on"
    return _edit(
        study_id,
        "settings",
        lambda s: studies.update_study(db(), s, user(), data, ip=client_ip()),
    )


# --- members ----------------------------------------------------------------------------------


def _owner_edit(study_id: int, action: Any) -> Any:
    study = get_or_404(db(), Study, study_id, user())
    require_role(db(), user(), study.id, "owner")
    try:
        action(study)
        db().commit()
    except ValidationError as exc:
        db().rollback()
        study = get_or_404(db(), Study, study_id, user())
        return _section(study, "members", status=422, error=exc.message, error_field=exc.field)
    return _section(study, "members")


@bp.post("/studies/<int:study_id>/members")
@login_required
def add_member(study_id: int) -> Any:
    f = request.form
    return _owner_edit(
        study_id,
        lambda s: studies.add_member(
            db(), s, user(), f.get("email", ""), f.get("role", "viewer"), ip=client_ip()
        ),
    )


@bp.post("/members/<int:membership_id>/role")
@login_required
def change_role(membership_id: int) -> Any:
    m = get_or_404(db(), Membership, membership_id, user(), "owner")
    return _owner_edit(
        m.study_id,
        lambda s: studies.change_member_role(
            db(), m, user(), request.form.get("role", ""), ip=client_ip()
        ),
    )


@bp.post("/members/<int:membership_id>/delete")
@login_required
def remove_member(membership_id: int) -> Any:
    m = get_or_404(db(), Membership, membership_id, user(), "owner")
    return _owner_edit(m.study_id, lambda s: studies.remove_member(db(), m, user(), ip=client_ip()))
