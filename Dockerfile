# Flexbot: one process, data in the /data volume, secrets from the environment.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    FLEXBOT_DATA_DIR=/data \
    FLEXBOT_HEALTH_HOST=127.0.0.1 \
    FLEXBOT_HEALTH_PORT=8080

RUN useradd --create-home --uid 10001 flexbot && mkdir /data && chown flexbot /data
WORKDIR /app

# Dependencies first, from pyproject.toml only, so this layer is cached until they change.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml','rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt && rm /tmp/requirements.txt

COPY bot ./bot
COPY cogs ./cogs
COPY config/flexbot.example.toml ./config/
RUN pip install --no-deps .

USER flexbot
VOLUME ["/data"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('FLEXBOT_HEALTH_PORT', '8080'), timeout=4)"]
CMD ["flexbot", "run"]
