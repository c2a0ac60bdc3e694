#!/usr/bin/env bash
# Runs ../shared/peers/run_all.sh with Tidings beside the peers, so every figure comes from one
# run. Builds the binary first; results land where run_all.sh puts them (PEERS_OUT or /tmp).
set -euo pipefail
cd "$(dirname "$0")/../.."
# The same build as the tests (`--all-targets`): `cargo build --bin tidings` alone would unify
# features differently and rebuild half the dependencies.
cargo build --workspace --all-targets --quiet
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
export TIDINGS_BIN="$target_dir/debug/tidings"
export PEERS_EXTRA_DIR="$PWD/bench/peers"
export PEERS_OUT="${PEERS_OUT:-/tmp/peers-out}"
export SMALL_PEERS="${SMALL_PEERS:-tantivy lancedb sqlite_fts5 bm25s tidings}"
export BIG_PEERS="${BIG_PEERS:-tantivy tidings}"
bash ../shared/peers/run_all.sh
echo "results: $PEERS_OUT/results.md"
