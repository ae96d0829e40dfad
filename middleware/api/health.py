"""/healthz (the process is up) and /readyz (the database and Redis answer; if not, which ones are missing)."""
from __future__ import annotations

from flask import Blueprint, jsonify
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from middleware.services import services

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    svc = services()
    checks = {}
    try:
        with svc.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except SQLAlchemyError as exc:
        checks["database"] = f"unavailable: {exc.__class__.__name__}"
    try:
        svc.redis.ping()
        checks["redis"] = "ok"
    except (RedisError, OSError) as exc:
        checks["redis"] = f"unavailable: {exc.__class__.__name__}"
    missing = [name for name, value in checks.items() if value != "ok"]
    if not missing:
        return jsonify({"status": "ready", "checks": checks})
    return jsonify({"status": "unavailable", "missing": missing, "checks": checks}), 503, {"Retry-After": "5"}
