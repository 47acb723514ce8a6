"""Operations: /healthz, /readyz, /metrics, request ids and request metrics, the admin jobs page.

``/healthz`` answers as long as the process runs (no database). ``/readyz`` checks the
database, the queue, the media folder and ffmpeg, and answers 503 naming what failed.
``/metrics`` is for Prometheus and is not public: only ``METRICS_ALLOW`` addresses reaching the
app directly (a request relayed by a proxy, i.e. with X-Forwarded-For, never counts as one), or
``Authorization: Bearer <METRICS_TOKEN>``.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import time
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, jsonify, redirect, request, url_for

from ipr import health, jobs, logs, metrics
from ipr.errors import NotFound
from ipr.web.context import client_ip, database, db, huey, login_required, render, storage, user

bp = Blueprint("ops", __name__)
access_log = logging.getLogger("ipr.requests")

UNAUTHENTICATED = ("/healthz", "/readyz", "/metrics")


@bp.get("/healthz")
def healthz() -> Any:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Any:
    checks = health.readiness(database().engine, huey(), storage().root)
    failed = [c.name for c in checks if not c.ok]
    body = {
        "status": "not ready" if failed else "ready",
        "failed": failed,
        "checks": {c.name: {"ok": c.ok, "detail": c.detail} for c in checks},
    }
    if failed:
        return jsonify(body), 503, {"Retry-After": "5"}
    return jsonify(body)


def metrics_allowed() -> bool:
    secret = current_app.config.get("METRICS_TOKEN", "")
    scheme, _, offered = request.headers.get("Authorization", "").partition(" ")
    if secret and scheme.lower() == "bearer":
        return hmac.compare_digest(offered.strip().encode(), secret.encode())
    if request.headers.get("X-Forwarded-For") or not request.remote_addr:
        return False
    try:
        address = ipaddress.ip_address(request.remote_addr)
    except ValueError:
        return False
    for entry in str(current_app.config.get("METRICS_ALLOW", "")).split(","):
        try:
            if entry.strip() and address in ipaddress.ip_network(entry.strip(), strict=False):
                return True
        except ValueError:
            access_log.warning("IPR_METRICS_ALLOW: %r is not an address or network", entry)
    return False


@bp.get("/metrics")
def metrics_view() -> Any:
    if not metrics_allowed():
        return Response("Forbidden: see IPR_METRICS_ALLOW and IPR_METRICS_TOKEN.\n", 403,
                        mimetype="text/plain")  # fmt: skip
    heartbeat = int(current_app.config["WORKER_HEARTBEAT_SECONDS"])
    return Response(metrics.exposition(database(), heartbeat), content_type=metrics.CONTENT_TYPE)


# --- the admin jobs page -----------------------------------------------------------------------


def admin() -> Any:
    """Administrators only; anyone else gets the same 404 as for a page that does not exist."""
    u = user()
    if not u.is_admin:
        raise NotFound()
    return u


def jobs_overview() -> dict[str, Any]:
    return jobs.overview(db(), int(current_app.config["WORKER_HEARTBEAT_SECONDS"]))


@bp.get("/admin/jobs")
@login_required
def jobs_page() -> Any:
    admin()
    return render("admin/jobs.html", "admin/_jobs.html", **jobs_overview())


@bp.post("/admin/jobs/<int:job_id>/retry")
@login_required
def retry_job(job_id: int) -> Any:
    admin()  # 404 to anyone else, like the page: nobody learns which jobs exist
    jobs.retry(db(), huey(), job_id, user=user(), ip=client_ip())
    if request.htmx:
        return render("admin/jobs.html", "admin/_jobs.html", **jobs_overview())
    return redirect(url_for("ops.jobs_page"), 303)


# --- request ids, request metrics, access log ------------------------------------------------


def init_app(app: Flask) -> None:
    @app.before_request
    def start() -> None:
        g.request_started = time.perf_counter()
        g.request_id = logs.new_request_id(request.headers.get("X-Request-Id"))
        g.request_id_token = logs.request_id_var.set(g.request_id)

    @app.after_request
    def finish(resp: Response) -> Response:
        rid = g.get("request_id")
        # media bytes answer the same whether checked or granted (ipr.web.media_grants)
        if rid and request.blueprint != "media":
            resp.headers["X-Request-Id"] = rid
        started = g.get("request_started")
        if started is not None:
            seconds = time.perf_counter() - started
            route = request.url_rule.rule if request.url_rule else "unmatched"
            metrics.HTTP_REQUESTS.labels(route, request.method, str(resp.status_code)).inc()
            metrics.HTTP_SECONDS.labels(route, request.method).observe(seconds)
            if route not in UNAUTHENTICATED:
                access_log.info(
                    "%s %s %s %.1f ms", request.method, route, resp.status_code, seconds * 1000,
                    extra={"method": request.method, "route": route, "status": resp.status_code,
                           "ms": round(seconds * 1000, 1)},
                )  # fmt: skip
        return resp

    @app.teardown_request
    def forget(_exc: BaseException | None) -> None:
        token = g.pop("request_id_token", None)
        if token is not None:
            logs.request_id_var.reset(token)
