# Installs the same locked set as `make`; the CUDA base image, non-root user and worker
# entrypoint come with the operations work.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    DO_NOT_TRACK=1 \
    GX_ANALYTICS_ENABLED=false

RUN apt-get update && apt-get install -y --no-install-recommends git make \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.lock pyproject.toml README.md ./
RUN python -m venv .venv && .venv/bin/pip install -r requirements.lock
COPY components components
COPY flows flows
COPY params.yaml dvc.yaml Makefile ./
RUN .venv/bin/pip install --no-deps -e .

CMD [".venv/bin/python", "-m", "flows.pipeline"]
