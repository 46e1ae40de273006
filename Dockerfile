# syntax=docker/dockerfile:1
# WorkPulse image: one image for every process; the command picks the part
# (`api` by default, `worker`, `scheduler`, `migrate`, see compose.yaml).
# Build: docker build -t workpulse .   No secret is baked in: settings come from the
# environment at run time (docs/operations.md, docs/configuration.md).

# --- build: resolve the locked dependencies with uv into a virtual environment -----------------
FROM python:3.11-slim-bookworm AS build

ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/workpulse \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN pip install --no-cache-dir uv==0.13.9

WORKDIR /src
# Dependencies first (a layer that changes only with the lock), then the project itself,
# installed as a regular (non-editable) package so the source tree is not needed at run time.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-dev --no-install-project
COPY src ./src
RUN uv sync --locked --no-dev --no-editable

# --- runtime: the virtual environment only, run by an unprivileged user ------------------------
FROM python:3.11-slim-bookworm AS runtime

RUN groupadd --system --gid 10001 workpulse \
    && useradd --system --uid 10001 --gid workpulse --home-dir /var/lib/workpulse \
        --create-home --shell /usr/sbin/nologin workpulse

COPY --from=build /opt/workpulse /opt/workpulse

ENV PATH="/opt/workpulse/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    WORKPULSE_HOST=0.0.0.0 \
    WORKPULSE_PORT=8000 \
    WORKPULSE_LOG_FORMAT=json

# The working directory is the only writable place (the embedded mode's SQLite file, if used).
WORKDIR /var/lib/workpulse
USER 10001:10001
EXPOSE 8000

# GET /health answers 200 when the database (and Redis) answer, 503 otherwise. Python's
# standard library, because the slim image has no curl; tests/deploy runs this very command
# against a real `workpulse api`. Processes without HTTP (worker, scheduler) turn it off.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('WORKPULSE_PORT', '8000'); sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/health', timeout=4).status == 200 else 1)"]

ENTRYPOINT ["workpulse"]
CMD ["api"]
