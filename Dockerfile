# The pipeline image, for Prefect Docker/Kubernetes workers and for `docker run`.
#
#   make image                          # CUDA-capable (default)
#   make image TORCH_VARIANT=cpu        # CPU-only, about 4 GB smaller
#
# CUDA: torch's Linux wheels on PyPI carry the CUDA runtime and cuDNN as nvidia-* wheels,
# so the image needs only Python; the host supplies the driver through the NVIDIA
# container toolkit (`--gpus all`, or the device request in flows/job_templates/).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ARG TORCH_VARIANT=cuda
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    DO_NOT_TRACK=1 \
    DVC_NO_ANALYTICS=1 \
    GX_ANALYTICS_ENABLED=false \
    MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false \
    PATH=/app/.venv/bin:$PATH

# git: DVC and the registry's git_commit tag; tini: forwards a worker's cancel (SIGTERM) to the flow
RUN apt-get update && apt-get install -y --no-install-recommends git make tini \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 mtl
WORKDIR /app
RUN chown mtl:mtl /app
USER mtl

COPY --chown=mtl:mtl requirements.lock pyproject.toml README.md ./
# The lock pins torch==2.13.0; the CPU variant installs that version's CPU build first,
# which satisfies the pin, so the lock then adds everything else unchanged.
RUN python -m venv .venv \
    && if [ "$TORCH_VARIANT" = "cpu" ]; then \
         pip install --index-url https://download.pytorch.org/whl/cpu "$(grep '^torch==' requirements.lock)"; \
       fi \
    && pip install -r requirements.lock
COPY --chown=mtl:mtl components components
COPY --chown=mtl:mtl flows flows
COPY --chown=mtl:mtl params.yaml dvc.yaml prefect.yaml Makefile ./
RUN pip install --no-deps -e .

# A Prefect worker replaces CMD with its `prefect flow-run execute` command.
ENTRYPOINT ["tini", "--"]
CMD ["python", "-m", "flows.pipeline"]
