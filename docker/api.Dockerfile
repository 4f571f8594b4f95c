# The API image: the runtime only (usqa less usqa/trainer/: the floor, the service, the client and the command; the
# service extra: onnxruntime, never torch), non-root, with the shipped model.
# EXTRAS=service (default) serves on the CPU; EXTRAS=service,gpu (compose's api-gpu) swaps in onnxruntime-gpu.
FROM python:3.11-slim

ARG EXTRAS=service

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    USQA_REGISTRY=/srv/usqa/models \
    USQA_DATA_ROOT=/srv/usqa/data \
    USQA_JOBS_ROOT=/srv/usqa/jobs

# libgl/glib are what opencv-python-headless still links against on slim images. apt-get clean drops apt's
# package caches (tens of MB on a base image without the official image's docker-clean apt hook).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libglib2.0-0 curl \
    && apt-get clean && rm -rf /var/lib/apt/lists/*

WORKDIR /srv/usqa
# setup.py too: the image installs the package the way a wheel is built (its shipped-model step only warns
# here, since models/ is copied after the install and served from USQA_REGISTRY).
COPY pyproject.toml setup.py README.md requirements/service.lock ./
# usqa/ without its trainer: a COPY of the package, less usqa/trainer (.dockerignore cannot exclude it for one
# image only), one folder at a time.
COPY usqa/*.py usqa/py.typed ./usqa/
COPY usqa/contracts ./usqa/contracts
COPY usqa/service ./usqa/service
COPY usqa/client ./usqa/client
# The demo's command module: `usqa --help` lists it; its stages import the trainer only when it runs.
COPY usqa/demo ./usqa/demo
# The service extra from requirements/service.lock (every package pinned with its hashes; `make lock`), then
# usqa itself without dependencies (the extras name what the lock holds).
# onnxruntime and onnxruntime-gpu are two wheels of one `onnxruntime` package folder: uninstalling either after
# the other was unpacked over it deletes files the other needs. So the gpu variant removes onnxruntime and
# installs onnxruntime-gpu alone, at the locked onnxruntime's version, with NVIDIA's CUDA/cuDNN wheels (these
# come from the index unhashed: the lock is the CPU image's) registered with the dynamic linker (the slim image
# has no CUDA), and the build fails unless onnxruntime then offers CUDAExecutionProvider: no image that quietly
# serves on the CPU.
RUN pip install --require-hashes -r service.lock \
    && pip install --no-deps ".[${EXTRAS}]" \
    && case ",${EXTRAS}," in \
        *,gpu,*) \
            ort_version="$(pip show onnxruntime | sed -n 's/^Version: //p')" \
            && pip uninstall -y onnxruntime \
            && pip install "onnxruntime-gpu[cuda,cudnn]==${ort_version}" \
            && site="$(python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" \
            && find "${site}/nvidia" -name 'lib*.so*' -printf '%h\n' | sort -u > /etc/ld.so.conf.d/usqa-nvidia.conf \
            && ldconfig \
            && python -c "import onnxruntime as ort; p = ort.get_available_providers(); assert 'CUDAExecutionProvider' in p, p" ;; \
    esac
COPY models ./models

# Every shared volume's mount point exists in the image and belongs to usqa: an empty named volume takes the
# ownership (and, for models/, the content) of the image folder it is first mounted over.
RUN useradd --system --uid 10001 --home /srv/usqa usqa \
    && mkdir -p /srv/usqa/data /srv/usqa/jobs \
    && chown -R usqa /srv/usqa/models /srv/usqa/data /srv/usqa/jobs
USER usqa

EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8000/readyz || exit 1
# `python -m usqa.service.api.cli` starts uvicorn without the trainer commands' torch import path.
CMD ["python", "-m", "usqa.service.api.cli", "serve", "--host", "0.0.0.0", "--port", "8000"]
