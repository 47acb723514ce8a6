"""The dyad timeline: the recording's timeline page and its JSON, the dyad's sessions one above
the other, the study dashboard, and the timeline API. Researchers only (viewer or above)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request, url_for
from sqlalchemy import select

from ipr import prompts
from ipr import timeline_service as ts
from ipr.access import get_or_404
from ipr.models import Dyad, Moment, RecallSession, Recording, Study
from ipr.web.api import api_user, token_required
from ipr.web.context import db, login_required, render, user

bp = Blueprint("timeline", __name__)


def _tolerance(rec: Recording) -> int:
    return ts.parse_tolerance(
        request.args.get("tolerance_ms"), rec.dyad.study.alignment_tolerance_ms
    )


def _page_payload(rec: Recording, tl: ts.Timeline) -> dict[str, Any]:
    """The API's payload plus what the page draws with: codebook, scales, clips, URLs."""
    study = rec.dyad.study
    return {
        **tl.to_dict(),
        "codes": [{"id": c.id, "name": c.name, "colour": c.colour} for c in study.codes],
        "scales": [
            {
                "key": s.key,
                "name": s.name,
                "min": s.min_value,
                "max": s.max_value,
                "labels": s.labels,
            }
            for s in study.scales
        ],
        "clips": [
            {"index": c.index, "start_ms": c.start_ms, "end_ms": c.end_ms} for c in rec.clips
        ],
        "prompt_answers": _prompt_answers(rec, study),
        "urls": {
            "data": url_for("timeline.data", recording_id=rec.id),
            "figures": url_for("timeline.page", recording_id=rec.id),
            "waveform": url_for("media.derived", recording_id=rec.id, name="waveform.json"),
            "analysis": url_for("media.derived", recording_id=rec.id, name="analysis.json"),
        },
    }


def _prompt_answers(rec: Recording, study: Study) -> dict[str, list[dict[str, str]]]:
    """Each moment's interview answers as the detail panel shows them (question, answer)."""
    ids = (
        select(Moment.id)
        .join(RecallSession, Moment.recall_session_id == RecallSession.id)
        .where(RecallSession.recording_id == rec.id, Moment.deleted_at.is_(None))
    )
    return {
        str(mid): prompts.display(study, stored)
        for mid, stored in prompts.answers(db(), ids).items()
    }


def _context(rec: Recording) -> dict[str, Any]:
    ctx: dict[str, Any] = {"rec": rec, "dyad": rec.dyad, "study": rec.dyad.study, "tl": None}
    if rec.status == "ready" and rec.duration_ms:
        tl = ts.timeline(db(), rec, _tolerance(rec))
        ctx.update(tl=tl, f=tl.figures, payload=_page_payload(rec, tl))
    return ctx


@bp.get("/recordings/<int:recording_id>/timeline")
@login_required
def page(recording_id: int) -> Any:
    """The whole page; an htmx request (the tolerance control, or the panel polling while the
    worker computes) gets the figures panel alone."""
    rec = get_or_404(db(), Recording, recording_id, user())
    return render("timeline/page.html", "timeline/_figures.html", **_context(rec))


@bp.get("/recordings/<int:recording_id>/timeline.json")
@login_required
def data(recording_id: int) -> Any:
    """The API's payload for the page's own tolerance control (cookie login, read-only)."""
    rec = get_or_404(db(), Recording, recording_id, user())
    return jsonify(ts.timeline(db(), rec, _tolerance(rec)).to_dict())


@bp.get("/recordings/<int:recording_id>/timeline/chance")
@login_required
def chance(recording_id: int) -> Any:
    """The co-marking figure with its chance baseline, as stored (polls while computing)."""
    rec = get_or_404(db(), Recording, recording_id, user())
    ctx = _context(rec)
    return render("timeline/_comarking.html", "timeline/_comarking.html", **ctx)


@bp.get("/recordings/<int:recording_id>/timeline/synchrony")
@login_required
def synchrony(recording_id: int) -> Any:
    """The synchrony-versus-surrogates figure, as stored (polls while computing)."""
    rec = get_or_404(db(), Recording, recording_id, user())
    ctx = _context(rec)
    sync = ctx["f"].get("synchrony") if ctx.get("f") else None
    return render("timeline/_synchrony.html", "timeline/_synchrony.html", sync=sync, **ctx)


@bp.get("/dyads/<int:dyad_id>/timeline")
@login_required
def dyad(dyad_id: int) -> Any:
    """The dyad's sessions one above the other, each with its lanes, pairs and figures."""
    d = get_or_404(db(), Dyad, dyad_id, user())
    sessions = []
    for rec in d.recordings:
        if rec.status == "ready" and rec.duration_ms:
            tl = ts.timeline(db(), rec, d.study.alignment_tolerance_ms)
            sessions.append(
                {"rec": rec, "tl": tl, "f": tl.figures, "payload": _page_payload(rec, tl)}
            )
        else:
            sessions.append({"rec": rec, "tl": None})
    pending = any(s["tl"] is not None and s["tl"].pending for s in sessions)
    total = ts.fig.aggregate(
        ts.fig.summary_of(s["f"]) for s in sessions if s["tl"] is not None and s["f"] is not None
    )
    return render(
        "timeline/dyad.html", dyad=d, study=d.study, sessions=sessions, pending=pending,
        total=total,
    )  # fmt: skip


@bp.get("/studies/<int:study_id>/dashboard")
@login_required
def dashboard(study_id: int) -> Any:
    """Every dyad × session: recall states, counts, co-marking against chance, synchrony.

    An htmx request (the table polling while figures are computed) gets the table alone."""
    study = get_or_404(db(), Study, study_id, user())
    rows = ts.study_dashboard(db(), study)
    pending = any(r.state in ("computing", "updating") for _, rs in rows for r in rs)
    total = ts.pooled(r for _, rs in rows for r in rs)
    return render(
        "timeline/dashboard.html", "timeline/_dashboard_table.html", study=study, rows=rows,
        pending=pending, total=total,
    )  # fmt: skip


@bp.get("/api/v1/recordings/<int:recording_id>/timeline")
@token_required
def api(recording_id: int) -> Any:
    rec = get_or_404(db(), Recording, recording_id, api_user())
    return jsonify(ts.timeline(db(), rec, _tolerance(rec)).to_dict())


def timeline_paths() -> dict[str, Any]:
    """The OpenAPI description of the timeline call (merged into ipr.web.openapi)."""
    moment = {
        "type": "object",
        "required": ["id", "t_ms", "end_ms", "peaks_ms", "text", "codes", "ratings"],
        "properties": {
            "id": {"type": "integer"},
            "t_ms": {"type": "integer"},
            "end_ms": {"type": ["integer", "null"]},
            "peaks_ms": {"type": "array", "items": {"type": "integer"}},
            "text": {"type": "string"},
            "codes": {"type": "array", "items": {"type": "integer"}, "description": "Code ids"},
            "ratings": {"type": "object", "additionalProperties": {"type": "integer"}},
            "version": {"type": "integer"},
            "phase": {
                "enum": ["blind", "response"],
                "description": "response: written after the reveal; never counted in a figure",
            },
            "responds_to_id": {
                "type": ["integer", "null"],
                "description": "The other lane's moment a response answers",
            },
            "corrected_at": {
                "type": ["string", "null"],
                "description": "When a researcher corrected this blind moment after the reveal",
            },
        },
    }
    coding = {
        "type": "object",
        "description": "A researcher's codes and note on one participant moment",
        "properties": {
            "id": {"type": "integer"},
            "moment_id": {"type": "integer"},
            "lane": {"enum": ["therapist", "client"]},
            "t_ms": {"type": "integer"},
            "end_ms": {"type": ["integer", "null"]},
            "codes": {"type": "array", "items": {"type": "integer"}},
            "note": {"type": "string"},
            "coder": {"type": "string"},
        },
    }
    ids = {"type": "array", "items": {"type": "integer"}}
    payload = {
        "type": "object",
        "required": ["recording_id", "duration_ms", "tolerance_ms", "lanes", "pairs", "unmatched"],
        "properties": {
            "recording_id": {"type": "integer"},
            "duration_ms": {"type": "integer"},
            "tolerance_ms": {"type": "integer"},
            "participants": {
                "type": "object",
                "description": "Per role: the participant's code and the recall session's status "
                "(invited, in_progress, submitted; null when not invited)",
            },
            "lanes": {
                "type": "object",
                "properties": {
                    "therapist": {"type": "array", "items": moment},
                    "client": {"type": "array", "items": moment},
                    "researcher": {"type": "array", "items": coding},
                },
            },
            "pairs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "therapist_moment_id": {"type": "integer"},
                        "client_moment_id": {"type": "integer"},
                        "lag_ms": {
                            "type": "integer",
                            "description": "client t_ms − therapist t_ms (> 0: therapist first)",
                        },
                    },
                },
            },
            "unmatched": {
                "type": "object",
                "properties": {"therapist": ids, "client": ids},
            },
            "figures_status": {
                "type": ["object", "null"],
                "description": "How current the stored figures are: state (fresh, updating: "
                "shown from an older version of the moments while the worker recomputes, "
                "computing: none stored yet, failed), moments_version they were computed "
                "from, current_version, computed_at, error, app_version, params (every "
                "parameter used)",
            },
            "figures": {
                "type": ["object", "null"],
                "description": "Stored figures (null while computing), from blind-phase "
                "moments only. Agreement figures of docs/timeline.md (co_marking_rate, chance "
                "with expected_rate and p_value, lag medians, the time-unit kappa with its "
                "bin_ms, observed and expected agreement, per_code, code_cooccurrence), "
                "synchrony (windowed cross-correlation of the two motion-energy curves, its "
                "series and surrogate baseline; null without analysis) and coders (agreement "
                "between researcher coders and with the participant's own codes, per lane and "
                "code: n_a, n_b, n_pairs, co_marking_rate, time_unit_kappa)",
            },
        },
    }
    return {
        "/recordings/{recording_id}/timeline": {
            "parameters": [
                {
                    "name": "recording_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "integer"},
                }
            ],
            "get": {
                "summary": "The dyad timeline: both lanes and the researchers' coding, the optimal "
                "one-to-one pairs within the tolerance, unmatched ids and the figures",
                "parameters": [
                    {
                        "name": "tolerance_ms",
                        "in": "query",
                        "schema": {
                            "type": "integer",
                            "minimum": 0,
                            "maximum": ts.MAX_TOLERANCE_MS,
                            "multipleOf": ts.TOLERANCE_STEP_MS,
                        },
                        "description": "Largest gap between two moments that may pair; "
                        "default: the study's alignment tolerance (always accepted). Other "
                        "values: 0–60,000 ms in 100 ms steps, computed by the worker (the "
                        "answer says computing until then)",
                    }
                ],
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {"application/json": {"schema": payload}},
                    },
                    **{
                        str(code): {
                            "description": text,
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Error"}
                                }
                            },
                        }
                        for code, text in (
                            (401, "No valid token"),
                            (404, "Not found, or not yours"),
                            (422, "Invalid tolerance, or the recording is not processed yet"),
                        )
                    },
                },
            },
        }
    }
