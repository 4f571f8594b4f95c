# The API image: the runtime only (service extra: onnxruntime, no torch), non-root, with the shipped model.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    USQA_REGISTRY=/srv/usqa/models

# libgl/glib are what opencv-python-headless still links against on slim images.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libglib2.0-0 curl \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /srv/usqa
COPY pyproject.toml README.md ./
COPY usqa ./usqa
COPY service ./service
COPY trainer ./trainer
RUN pip install ".[service]"
COPY models ./models

RUN useradd --system --uid 10001 --home /srv/usqa usqa && chown -R usqa /srv/usqa/models
USER usqa

EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8000/readyz || exit 1
# `python -m service.api.cli` starts uvicorn without the trainer commands' torch import path.
CMD ["python", "-m", "service.api.cli", "serve", "--host", "0.0.0.0", "--port", "8000"]
