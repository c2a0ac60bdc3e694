"""The official OpenAI Python SDK against a running Tidings server (run by tests/api/openai_sdk.rs).

Usage: python tests/openai_sdk_client.py BASE_URL AS_OF
Exits non-zero (with the reason) when anything a bot relies on is missing.
"""
import sys

from openai import OpenAI

base, as_of = sys.argv[1], sys.argv[2]
client = OpenAI(base_url=f"{base}/v1", api_key="unused-on-loopback")
extra = {"search": {"as_of": as_of}}

models = [m.id for m in client.models.list()]
assert "tidings" in models and "tidings-fun" in models, models

# Non-streaming: the message plus the extension fields.
r = client.chat.completions.create(
    model="tidings",
    messages=[{"role": "user", "content": "What is going on with the trains?"}],
    extra_body=extra,
)
text = r.choices[0].message.content
assert text and text.strip(), r
assert r.object == "chat.completion"
ext = r.model_extra
assert "fx:9" in [p["id"] for p in ext["search_results"]], ext
assert len(ext["citations"]) == len(ext["search_results"]) >= 1, ext
assert len(ext["related_questions"]) == 3, ext
assert ext["tidings"]["as_of"].startswith(as_of[:19]), ext["tidings"]
assert r.usage.completion_tokens > 0
print("non-streaming:", text.replace("\n", " ")[:200])

# Streaming with usage: deltas, then the extensions on the last content chunk, then usage.
stream = client.chat.completions.create(
    model="tidings-fun",
    messages=[{"role": "user", "content": "Where is the emergency shelter in Riverton?"}],
    stream=True,
    stream_options={"include_usage": True},
    extra_body=extra,
)
pieces, final, usage = [], None, None
for chunk in stream:
    if chunk.usage is not None:
        usage = chunk.usage
    if chunk.choices and chunk.choices[0].delta.content:
        pieces.append(chunk.choices[0].delta.content)
    if (chunk.model_extra or {}).get("citations") is not None:
        final = chunk.model_extra
assert len(pieces) >= 1, pieces  # a checked sentence at a time
assert final is not None, "no chunk carried the extension fields"
assert "fx:12" in [p["id"] for p in final["search_results"]], final
assert final["tidings"]["persona"] == "fun", final["tidings"]
assert usage is not None and usage.completion_tokens > 0
print("streaming:", "".join(pieces).replace("\n", " ")[:200])

# Errors come through as the SDK's exceptions with our codes.
import openai

try:
    client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "hi"}])
    raise SystemExit("an unknown model must fail")
except openai.NotFoundError as e:
    assert e.body["code"] == "model_not_found", e.body
print("ok")
