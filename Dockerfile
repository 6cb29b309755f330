# dort5bot image: the bot only (no tests, no dev tools). Published to GHCR by
# .github/workflows/image.yml; run it with the settings of .env.example as environment
# variables and a volume on /data (journal, state, paper account, outbox).
FROM python:3.11-slim
# the commit /version and the backtest results report (the image has no .git)
ARG GIT_COMMIT=unknown

ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    UV_PROJECT_ENVIRONMENT=/app/.venv UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy \
    DATA_DIR=/data HTTP_HOST=0.0.0.0 HTTP_PORT=8080 LOG_JSON=true API_ENABLED=false \
    GIT_COMMIT=${GIT_COMMIT}

WORKDIR /app
RUN pip install --no-cache-dir "uv==0.9.7"
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project && rm -rf /root/.cache
COPY main.py bootstrap.py ./
COPY core core
COPY handlers handlers
COPY jobs jobs
COPY utils utils
COPY web web
COPY locales locales
# The project's own code compiled too (uv compiles only the dependencies; the image runs with
# PYTHONDONTWRITEBYTECODE, so nothing would ever cache it): start-up reads .pyc files.
RUN /app/.venv/bin/python -m compileall -q main.py bootstrap.py core handlers jobs utils web

RUN useradd --create-home --uid 10001 bot && mkdir -p /data && chown bot /data
USER bot
VOLUME /data
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
    CMD ["/app/.venv/bin/python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('HTTP_PORT', '8080'), timeout=4)"]
CMD ["/app/.venv/bin/python", "main.py", "run"]
