#!/usr/bin/env bash
# Builds the fuzz targets' seed corpora from the captured messages in ../shared/data/formats
# (one file per message) into fuzz/corpus/<target>/. Idempotent.
set -euo pipefail
cd "$(dirname "$0")"
formats=${FORMATS:-../../shared/data/formats}
[ -d "$formats" ] || { echo "fuzz: $formats is missing (the shared data sits beside the repo)" >&2; exit 1; }
python3 - "$formats" <<'PY'
import json, os, sys, hashlib
formats = sys.argv[1]
def put(target, data):
    d = os.path.join("corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)
def lines(path):
    with open(os.path.join(formats, path), "rb") as f:
        return [l for l in f.read().split(b"\n") if l.strip()]
for l in lines("bluesky_jetstream/golden_v1.jsonl") + lines("bluesky_jetstream/expected_v1.jsonl")[:200]:
    put("jetstream", l)
for l in lines("mastodon_streaming/docs_streaming_sse_events.jsonl"):
    v = json.loads(l)
    put("mastodon", (v.get("event", "") + "\n" + (v.get("data_raw") or v.get("data") or "")).encode())
for name in ("streaming_output.jsonl", "streaming_output_with_error.jsonl"):
    for l in lines("twitter_v2_stream/" + name):
        put("xstream", l)
posts = lines("../tweetqa/posts.jsonl")[:100] + lines("../crisislex26/posts.jsonl")[:100]
for l in posts:
    put("validate", l)
for i in range(0, len(posts), 10):
    put("jsonl", b"\n".join(posts[i:i + 10]))
extra = ["地震です 東京で大きな揺れ #earthquake", "RT @user: مرحبا [1]", "👨‍👩‍👧‍👦 e\u0301 \u200b\u202e"]
for i in range(0, 60, 3):
    texts = [json.loads(p).get("text", "") for p in posts[i:i + 3]]
    put("prompt", b"\xff".join(t.encode() for t in ["What is happening?", "Posts report it [1]. Nothing [9]."] + texts + extra))
PY
for t in corpus/*; do echo "fuzz: $(ls "$t" | wc -l) seeds in $t"; done
