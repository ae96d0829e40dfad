"""gunicorn's own log lines (its error log and its access log) in the app's JSON shape (``logs.JsonFormatter``).

``config/gunicorn.conf.py`` names ``JsonLogger`` as gunicorn's ``logger_class``. With ``KB_LOG_JSON=false``
gunicorn keeps its own text lines. An access line carries the request's id (the ``X-Request-Id`` the app
answered) and the request's fields: ``method``, ``path`` (without the query string, which may carry
secrets), ``status``, ``duration_ms``, ``response_bytes``, ``remote_addr``, ``user_agent`` (docs/observability.md).
"""
from __future__ import annotations

from gunicorn import glogging

from config.settings import SettingsError, load_settings

from middleware.logs import JsonFormatter, RequestIdFilter


def _json_enabled() -> bool:
    try:
        return load_settings().log_json
    except SettingsError:  # the app will say which setting, and stop; until then, JSON
        return True


def access_fields(resp, environ, request_time) -> dict:
    status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
    return {"method": environ.get("REQUEST_METHOD"), "path": environ.get("PATH_INFO"),
            "status": int(status) if str(status).isdigit() else status,
            "duration_ms": round(request_time.total_seconds() * 1000, 3),
            "response_bytes": getattr(resp, "sent", None), "remote_addr": environ.get("REMOTE_ADDR"),
            "user_agent": environ.get("HTTP_USER_AGENT")}


class JsonLogger(glogging.Logger):
    def setup(self, cfg):
        super().setup(cfg)
        self.json = _json_enabled()
        if not self.json:
            return
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(JsonFormatter())
        for handler in self.error_log.handlers:
            if not any(isinstance(f, RequestIdFilter) for f in handler.filters):
                handler.addFilter(RequestIdFilter())

    def access(self, resp, req, environ, request_time):
        if not self.access_log_enabled:
            return
        if not self.json:
            super().access(resp, req, environ, request_time)
            return
        headers = resp.headers.items() if hasattr(resp.headers, "items") else resp.headers
        request_id = next((value for name, value in headers if name.lower() == "x-request-id"), None)
        fields = access_fields(resp, environ, request_time)
        self.access_log.info("%s %s %s", fields["method"], fields["path"], fields["status"],
                             extra={"request_id": request_id, "fields": fields})
