"""gunicorn settings for kraty-bridge: ``gunicorn -c config/gunicorn.conf.py 'app:create_app()' -w N -b ...``.

Only the hooks that make the Prometheus metrics right with several worker processes (docs/metrics.md);
command-line options still choose workers, threads and binds.

- ``on_starting`` (the master, before any worker): multi-process mode. Uses ``PROMETHEUS_MULTIPROC_DIR``
  if set (share it with the RQ workers of the same machine), else a new temporary directory; creates it
  and removes the files of processes that no longer run. The workers, forked later, inherit the variable
  before they import prometheus_client.
- ``when_ready``: with ``KB_METRICS_BIND``, the master serves the metrics there (a thread).
- ``child_exit``: ``multiprocess.mark_process_dead`` for the worker that exited.
- ``pre_request``: a request whose body may be left unread — a ``Content-Length`` over the app's body limit
  (``KB_MAX_BODY_BYTES``: answered 413 unread) or a chunked body (read at most one byte past the limit) —
  closes its connection after the answer, which then says ``Connection: close`` (gunicorn would otherwise
  say ``keep-alive``, then find the rest of the body where the next request should be).

The control socket (gunicorn >= 25.1, for ``gunicornc``) is off: its default path,
``$XDG_RUNTIME_DIR/gunicorn.ctl`` or ``~/.gunicorn/gunicorn.ctl``, is one for every gunicorn of the user, so a
second instance would take over the first one's (and the image's home does not exist). To use gunicornc, set
``GUNICORN_CONTROL_SOCKET`` to a path of this instance's own.

``logger_class``: gunicorn's error and access lines in the app's JSON shape, with the request id
(``middleware/gunicorn_logging.py``; docs/observability.md). ``--access-logfile -`` turns the access log on.
"""
import os
import sys
import tempfile

control_socket_disable = not os.environ.get("GUNICORN_CONTROL_SOCKET")
if not control_socket_disable:
    control_socket = os.environ["GUNICORN_CONTROL_SOCKET"]
logger_class = "middleware.gunicorn_logging.JsonLogger"


def on_starting(server):
    from middleware.metrics.multiproc import MULTIPROC_ENV, prepare_dir  # imports no prometheus_client
    if not os.environ.get(MULTIPROC_ENV) and "prometheus_client" in sys.modules:  # e.g. --preload
        server.log.warning("metrics: prometheus_client was imported before %s was set: each worker will report "
                           "only its own metrics; set %s in the environment", MULTIPROC_ENV, MULTIPROC_ENV)
    path = os.environ.get(MULTIPROC_ENV) or tempfile.mkdtemp(prefix="kraty-bridge-metrics-")
    os.environ[MULTIPROC_ENV] = path
    removed = prepare_dir(path)
    server.log.info("metrics: multi-process directory %s (%d stale files removed)", path, removed)


def when_ready(server):
    from config.settings import SettingsError, load_settings
    try:
        settings = load_settings()
    except SettingsError as exc:  # the workers will say it too, and exit
        server.log.error("metrics listener not started: %s", exc)
        return
    if settings.metrics_bind:
        from middleware.metrics.listener import serve_bind
        serve_bind(settings)
        server.log.info("metrics: serving http://%s/metrics", settings.metrics_bind)


def child_exit(server, worker):
    from middleware.metrics.multiproc import mark_process_dead
    mark_process_dead(worker.pid)


def pre_request(worker, req):
    worker.log.debug("%s %s", req.method, req.path)
    limit = getattr(getattr(worker, "wsgi", None), "config", {}).get("MAX_CONTENT_LENGTH")
    length = next((value for name, value in req.headers if name == "CONTENT-LENGTH"), None)
    chunked = any(name == "TRANSFER-ENCODING" for name, _ in req.headers)
    if chunked or (limit is not None and length is not None and length.isdigit() and int(length) > limit):
        req.must_close = True
