# syntax=docker/dockerfile:1
# One image for all four services: `docker run leadflow serve <intake|scoring|handoff|feedback>`,
# `docker run leadflow migrate` for topics and schemas.

FROM python:3.11-slim AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, from pyproject.toml alone (with empty packages), so a code
# change reuses this layer. The stub build is removed: setuptools would keep its
# newer-looking files in build/ over the real sources. No extras: the dev stack, the
# bench, the tests and the linters are extras in pyproject.toml and stay out of the image.
COPY pyproject.toml ./
RUN mkdir leadflow shared services \
    && touch leadflow/__init__.py shared/__init__.py services/__init__.py \
    && pip install . \
    && pip uninstall --yes leadflow \
    && rm -rf build leadflow shared services ./*.egg-info
COPY leadflow ./leadflow
COPY shared ./shared
COPY services ./services
RUN pip install --no-deps .

FROM python:3.11-slim AS runtime
RUN groupadd --system --gid 10001 leadflow \
    && useradd --system --uid 10001 --gid leadflow --home-dir /app --shell /usr/sbin/nologin leadflow
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY config/ /app/config/
COPY deploy/docker/healthcheck.py /app/healthcheck.py
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LEADFLOW_ENV=production \
    LEADFLOW_HOST=0.0.0.0 \
    LEADFLOW_CONFIG_DIR=/app/config \
    LEADFLOW_DATA_DIR=/tmp/leadflow
USER 10001:10001
EXPOSE 8001 8002 8003 8004
# Finds which service this container serves and asks its /healthz (python: slim has no curl).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/app/healthcheck.py"]
ENTRYPOINT ["leadflow"]
CMD ["serve", "intake"]
