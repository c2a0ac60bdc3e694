#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 600) with libFuzzer through cargo-fuzz on the
# nightly toolchain, from the seed corpora (fuzz/seeds.sh), and prints what each run did.
#   bash fuzz/run.sh [SECONDS] [TARGET...]
# Needs: rustup's nightly toolchain and cargo-fuzz (installed from crates.io when missing).
# Findings land in fuzz/artifacts/<target>/; reproduce one with
#   cargo +nightly fuzz run <target> fuzz/artifacts/<target>/<file>
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(validate jsonl jetstream mastodon xstream prompt)
rustup toolchain list | grep -q '^nightly' || { echo "fuzz: needs the nightly toolchain (rustup toolchain install nightly)" >&2; exit 1; }
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
bash seeds.sh
# Plain coverage-guided fuzzing (no AddressSanitizer: the code under test is safe Rust; the
# C++ in llama.cpp is not linked by these targets).
cargo +nightly fuzz build --sanitizer none
for t in "${targets[@]}"; do
  mkdir -p "logs"
  echo "fuzz: $t for ${seconds}s"
  if cargo +nightly fuzz run --sanitizer none "$t" "corpus/$t" -- -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=10 >"logs/$t.log" 2>&1; then
    result=ok
  else
    result=FOUND
  fi
  execs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "logs/$t.log" | grep -Eo '[0-9]+$' || true)
  [ -n "$execs" ] || execs=$(grep -Eo '^#[0-9]+' "logs/$t.log" | tail -n 1 | tr -d '#')
  cov=$(grep -Eo 'cov: [0-9]+' "logs/$t.log" | tail -n 1 || true)
  echo "fuzz: $t $result, executions ${execs:-?}, ${cov:-cov: ?}, corpus $(ls "corpus/$t" | wc -l) (log fuzz/logs/$t.log)"
done
