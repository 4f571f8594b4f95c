# The retraining worker image: the train extra (torch) and the service extra (onnxruntime checks the exported
# graphs; the registry writer publishes them), non-root like the API image, one Celery job at a time.
# CPU torch by default; TORCH_VARIANT picks another PyTorch wheel build (cu128 in compose's worker-gpu), and
# TORCH_INDEX_URL a mirror of https://download.pytorch.org/whl/<variant>.
FROM python:3.11-slim

# The version pyproject.toml pins in the train extra (tests/test_containers.py checks they agree).
ARG TORCH_VERSION=2.13.0
ARG TORCH_VARIANT=cpu
ARG TORCH_INDEX_URL=

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    MPLBACKEND=Agg \
    MPLCONFIGDIR=/tmp/matplotlib \
    USQA_REGISTRY=/srv/usqa/models \
    USQA_DATA_ROOT=/srv/usqa/data \
    USQA_JOBS_ROOT=/srv/usqa/jobs \
    USQA_WORK_ROOT=/srv/usqa/work

# libgl/glib are what opencv-python-headless still links against on slim images. apt-get clean drops apt's
# package caches (tens of MB on a base image without the official image's docker-clean apt hook).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libglib2.0-0 \
    && apt-get clean && rm -rf /var/lib/apt/lists/*

# torch first, in its own layer (it is most of the image). The local version label (+cpu, +cu128) makes pip
# take exactly that build from the PyTorch index: PyPI's plain torch wheel for Linux is a CUDA build, and a
# missing variant fails the build instead of pulling one. The project install below keeps it: torch==2.13.0
# is satisfied by 2.13.0+cpu.
RUN index="${TORCH_INDEX_URL:-https://download.pytorch.org/whl/${TORCH_VARIANT}}" \
    && pip install --extra-index-url "${index}" "torch==${TORCH_VERSION}+${TORCH_VARIANT}"

WORKDIR /srv/usqa
# setup.py too: the image installs the package the way a wheel is built (its shipped-model step only warns
# here, since models/ is copied after the install and served from USQA_REGISTRY).
COPY pyproject.toml setup.py README.md requirements/worker.lock ./
COPY usqa ./usqa
# The rest of the service and train extras from requirements/worker.lock (every package pinned with its hashes;
# `make lock`), then usqa itself without dependencies. torch is the one package the lock leaves out: its build
# depends on TORCH_VARIANT and comes from the PyTorch index above, pinned by version and variant but not by hash
# (the hash of the CPU wheel on the build machines' disk would not match a cu128 build, nor another mirror's).
# The lock was resolved against the CPU wheel, so the CPU image gets no CUDA package; a CUDA variant's NVIDIA
# wheels come with its torch, unhashed.
RUN pip install --require-hashes -r worker.lock \
    && pip install --no-deps ".[service,train]" \
    && python -c "import torch; assert torch.__version__ == '${TORCH_VERSION}+${TORCH_VARIANT}', torch.__version__"
# The shipped model too: whichever of api and worker first mounts the empty models volume seeds it.
COPY models ./models

# Every shared volume's mount point exists in the image and belongs to usqa: an empty named volume takes the
# ownership (and, for models/, the content) of the image folder it is first mounted over.
RUN useradd --system --uid 10001 --home /srv/usqa usqa \
    && mkdir -p /srv/usqa/data /srv/usqa/jobs /srv/usqa/work \
    && chown -R usqa /srv/usqa/models /srv/usqa/data /srv/usqa/jobs /srv/usqa/work
USER usqa

# `usqa worker` names its Celery node usqa@<hostname>. The ping asks that node, through the broker, to answer
# (its main process does, also while a job trains in the pool child): no reply in 10 s, or no broker, fails.
# It names the broker instead of `-A usqa.trainer.jobs.app`: importing the app imports torch, onnx and scipy (16 s
# of CPU on a loaded 2-core machine, every interval), so that ping timed out while the worker was fine.
# The start period covers a worker that needs minutes to import torch on such a machine.
HEALTHCHECK --interval=15s --timeout=30s --start-period=180s --retries=3 \
    CMD celery -b "${USQA_BROKER_URL:-$USQA_REDIS_URL}" inspect ping -d "usqa@${HOSTNAME}" --timeout 10 || exit 1
CMD ["python", "-m", "usqa", "worker"]
