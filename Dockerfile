# syntax=docker/dockerfile:1
# synthia-rt image: wheels are built in a builder stage (compilers live only there); the runtime
# stage installs them offline into a slim Python and runs as an unprivileged user.
#   docker build -t synthia-rt .
#   docker run -e DATABASE_URL=… -e REDIS_URL=… -e JWT_SECRET_KEY=… -p 8000:8000 synthia-rt
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# -- builder: the project's wheel and every dependency's wheel ----------------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md piccolo_conf.py ./
COPY piccolo_migrations ./piccolo_migrations
COPY synthia_rt ./synthia_rt
# The same command tests/test_image.py runs, then the dependencies' wheels beside it.
RUN pip wheel . --no-deps -w /wheels \
    && pip wheel -w /wheels /wheels/synthia_rt-*.whl

# -- runtime: no compilers, no build tools, no source tree ---------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="synthia-rt" \
      org.opencontainers.image.description="Real-time backend of Synthia Style: authenticated WebSockets, streaming analyses, Redis fan-out" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/synthia-style/synthia_rt" \
      org.opencontainers.image.documentation="https://github.com/synthia-style/synthia_rt/blob/main/docs/operations.md" \
      org.opencontainers.image.licenses="Proprietary"
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DATA_DIR=/var/lib/synthia
RUN groupadd --system --gid 10001 synthia \
    && useradd --system --uid 10001 --gid synthia --home-dir /var/lib/synthia --create-home \
       --shell /usr/sbin/nologin synthia
# Installed from the builder's wheels only (--no-index): nothing is fetched or compiled here,
# and the wheels never become a layer of this image.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels synthia-rt
USER synthia:synthia
WORKDIR /var/lib/synthia
EXPOSE 8000
# /readyz answers 200 once PostgreSQL and Redis answer (synthia_rt/rest/health.py).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2).status != 200)"]
ENTRYPOINT ["synthia-rt"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
