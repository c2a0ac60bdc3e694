#!/usr/bin/env python3
"""Writes the local sentence model (all-MiniLM-L6-v2, models/all-minilm-l6-v2) as a GGUF file
that llama.cpp runs as a BERT embedding model, for `agent/examples/llama_embed.rs` (which
measures it beside the candle embedder the index uses).

    python3 -m venv /tmp/gguf && /tmp/gguf/bin/pip install gguf safetensors numpy
    /tmp/gguf/bin/python scripts/minilm-to-gguf.py models/all-minilm-l6-v2 OUT.gguf f16|q8_0|f32

Why not llama.cpp's own `convert_hf_to_gguf.py`: the copy vendored in the `llama-cpp-sys-2`
crate imports a `conversion` package the crate does not ship (and torch). This writes what
that converter writes for a BERT model, with gguf-py's own name map and quantiser: the
WordPiece vocabulary with a word-start marker (U+2581) on whole words and `##` removed from
pieces, the special tokens, mean pooling, non-causal attention; the matrices as F16 or Q8_0,
the position and token-type tables (added to activations) and every vector as F32.
"""
import sys, json, numpy as np, gguf
from safetensors.numpy import load_file
src, out, qtype = sys.argv[1], sys.argv[2], sys.argv[3]
cfg = json.load(open(f"{src}/config.json"))
tensors = load_file(f"{src}/model.safetensors")
arch = gguf.MODEL_ARCH.BERT
w = gguf.GGUFWriter(out, gguf.MODEL_ARCH_NAMES[arch])
n = cfg["num_hidden_layers"]
w.add_context_length(cfg["max_position_embeddings"])
w.add_embedding_length(cfg["hidden_size"])
w.add_feed_forward_length(cfg["intermediate_size"])
w.add_block_count(n)
w.add_head_count(cfg["num_attention_heads"])
w.add_layer_norm_eps(cfg["layer_norm_eps"])
w.add_causal_attention(False)
w.add_pooling_type(gguf.PoolingType.MEAN)
w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0 if qtype=="q8_0" else (gguf.LlamaFileType.MOSTLY_F16 if qtype=="f16" else gguf.LlamaFileType.ALL_F32))
# The vocabulary as llama.cpp's BERT converter writes it (a marker on word starts).
vocab = [l.rstrip("\n") for l in open(f"{src}/vocab.txt", encoding="utf-8")]
toks, types = [], []
for t in vocab:
    if t.startswith("[") and t.endswith("]"):
        toks.append(t); types.append(gguf.TokenType.CONTROL)
    elif t.startswith("##"):
        toks.append(t[2:]); types.append(gguf.TokenType.NORMAL)
    else:
        toks.append("\u2581" + t); types.append(gguf.TokenType.NORMAL)
w.add_tokenizer_model("bert")
w.add_tokenizer_pre("default")
w.add_token_list(toks)
w.add_token_types(types)
w.add_token_type_count(cfg["type_vocab_size"])
idx = {t: i for i, t in enumerate(vocab)}
w.add_bos_token_id(idx["[CLS]"]); w.add_eos_token_id(idx["[SEP]"]); w.add_unk_token_id(idx["[UNK]"])
w.add_sep_token_id(idx["[SEP]"]); w.add_pad_token_id(idx["[PAD]"]); w.add_mask_token_id(idx["[MASK]"])
w.add_add_bos_token(True); w.add_add_eos_token(True)
tmap = gguf.get_tensor_name_map(arch, n)
for name, data in tensors.items():
    if name.endswith("position_ids") or name.startswith("pooler"):
        continue
    new = tmap.get_name(name, try_suffixes=(".weight", ".bias"))
    if new is None:
        print(f"skipped {name}: no GGUF name", file=sys.stderr)
        continue
    data = data.astype(np.float32)
    # Tables added to activations stay F32 (ggml adds no F16 to F32).
    table = "token_types" in new or "position" in new
    if data.ndim == 2 and qtype == "q8_0" and not table and data.shape[1] % 32 == 0:
        q = gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0)
        w.add_tensor(new, q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    elif data.ndim == 2 and qtype in ("f16", "q8_0") and not table:
        w.add_tensor(new, data.astype(np.float16))
    else:
        w.add_tensor(new, data)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
print(f"wrote {out}")
