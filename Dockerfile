# driftstream worker image. Configuration comes only from DRIFTSTREAM_* environment
# variables (streams/settings.py); see docker-compose.yml for a production-like stack.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# Only what the package needs, so editing tests or deploy/ does not rebuild the layer.
COPY pyproject.toml README.md ./
COPY streams ./streams
COPY detectors ./detectors
COPY schemas ./schemas
COPY load_tests ./load_tests
RUN pip install ".[rocksdb]" && rm -rf /src

RUN useradd --system --uid 10001 --home-dir /var/lib/driftstream driftstream \
    && mkdir -p /var/lib/driftstream/data \
    && chown -R driftstream /var/lib/driftstream
USER driftstream
WORKDIR /var/lib/driftstream

EXPOSE 6066
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('DRIFTSTREAM_WEB_PORT', '6066') + '/health', timeout=4)"]

CMD ["driftstream", "worker"]
