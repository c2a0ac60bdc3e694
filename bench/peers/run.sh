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
# Freshness of Tidings with vectors (fresh.py's method; BM25 and vector lag per post), then the
# report again so that its freshness table holds Tidings beside tantivy-py and LanceDB.
# FRESH_EMBEDDER defaults to the product's embedder (`local`: the sentence model with interim
# vectors); FRESH_EMBEDDER=static measures the distilled table alone, and
# TIDINGS__EMBEDDER__INTERIM=none the sentence model alone (embedding the 100k base corpus then
# takes about twenty minutes, and vectors trail a 500 posts/s stream).
results=${PEERS_RESULTS:-/tmp/peers-results}
( cd ../shared/peers && PYTHONPATH="$PWD" PEERS_RESULTS="$results" \
    timeout "${STEP_TIMEOUT:-900}" "${PEERS_VENV:-/tmp/peers-venv}/bin/python" \
    "$OLDPWD/bench/peers/fresh_tidings.py" --seconds "${FRESH_SECONDS:-30}" ) \
  > "$results/fresh_tidings.log" 2>&1 || echo "fresh_tidings failed; see $results/fresh_tidings.log"
PEERS_RESULTS="$results" "${PEERS_VENV:-/tmp/peers-venv}/bin/python" ../shared/peers/report.py --out "$PEERS_OUT" > /dev/null
echo "results: $PEERS_OUT/results.md"
