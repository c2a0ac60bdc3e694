#!/usr/bin/env bash
# rustc wrapper that cargo calls for every crate (see .cargo/config.toml).
#
# qdrant-edge 0.9.0 uses `std::assert_matches`, which is unstable before rustc 1.97.
# For that one crate only, we enable the feature through RUSTC_BOOTSTRAP scoped to the
# crate name; every other crate is compiled by the real rustc unchanged (setting
# RUSTC_BOOTSTRAP globally would make other crates detect "nightly" and change behaviour).
# Remove this wrapper once the toolchain is >= 1.97.
rustc="$1"; shift
for arg in "$@"; do
  if [ "$arg" = "qdrant_edge" ] && [[ " $* " == *" --crate-name qdrant_edge "* ]]; then
    RUSTC_BOOTSTRAP=qdrant_edge exec "$rustc" "$@" -Zcrate-attr='feature(assert_matches)'
  fi
done
exec "$rustc" "$@"
