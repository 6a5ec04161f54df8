# The movies API against an external PostgreSQL (see docker-compose.yml).
# `api-admin serve` applies schema.sql at start; API_LOAD_SAMPLE_DATA=true loads the
# bundled IMDb movies into an empty table.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# A regular install, not an editable one: the wheel carries schema.sql (as
# queries/schema.sql) and the movies file (api/data) as package data.
WORKDIR /src
COPY pyproject.toml README.md schema.sql ./
COPY api ./api
COPY queries ./queries
RUN pip install --no-cache-dir . \
    && rm -rf /src

RUN groupadd --system app \
    && useradd --system --gid app --create-home --home-dir /home/app --shell /usr/sbin/nologin app
USER app
WORKDIR /home/app

EXPOSE 8000

# No curl in the slim image: python's urllib. A 503 from /health raises, so it fails too.
HEALTHCHECK --interval=15s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]

CMD ["api-admin", "serve", "--host", "0.0.0.0", "--port", "8000", "--no-access-log"]
