#!/usr/bin/env python3
"""Checks `resp import-gguf` against transformers' own GGUF conversion and the `gguf` package.

    python3 tools/check_gguf_import.py --resp-dir models/smollm2-135m-instruct \
        --hf-dir HF_DIR [--gguf FILE.gguf]

HF_DIR is the folder transformers writes for the same file:

    AutoModelForCausalLM.from_pretrained(d, gguf_file=g).save_pretrained(HF_DIR)
    AutoTokenizer.from_pretrained(d, gguf_file=g).save_pretrained(HF_DIR)

Checks:
  1. tensors: the same names and shapes, and bit-identical values after widening both to f32
     (resp's f32 import must equal transformers' dequantize + un-permute exactly);
  2. with --gguf: every tensor again against gguf.dequantize (the numpy reference of ggml's
     dequantize_row_*), undoing llama.cpp's q/k permutation here, independently of transformers;
  3. config.json: the values both define (sizes, eps, rope theta, ids, tying);
  4. tokenizer.json: ids from `tokenizers` for resp's file and transformers' on varied text;
     differences are listed (transformers ignores tokenizer.ggml.pre "smollm", which splits
     digits one by one, so they may differ on digits; resp follows llama.cpp and the model's
     original tokenizer there).

Needs numpy, safetensors-free reading (done here), `tokenizers` and, for --gguf, `gguf`.
Exit 0 when every check passes (tokenizer differences listed under --allow-digit-diffs pass).
"""

import argparse
import json
import os
import struct
import sys

import numpy as np

TEXTS = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "  leading spaces and trailing   ",
    "Tabs\tand\nnewlines\n\n\nand\r\nCRLF",
    "I have 3 apples and 12 oranges; 2024-06-01 at 10:45, pi=3.14159, 1,000,000.",
    "Numbers: 0 1 22 333 4444 55555 007",
    "Unicode: café naïve Zürich 東京 Привет мир 😀👍🏽 ﬁ",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "Code: def f(x):\n    return x**2  # square\n",
    "Mixed CASE, ALLCAPS, camelCase, snake_case, kebab-case.",
    "Emoji sequence: 👩‍👩‍👧‍👦 and flags 🇫🇷🇯🇵",
    "Quotes: 'single' \"double\" `back` — dashes – and … ellipsis",
    "it's don't we'll they're I'm you've he'd",
    "<repo_name>resp<file_sep>main.cpp<|endoftext|>",
    "https://example.com/path?query=1&x=y#frag",
    "   ",
    "",
    "a" * 300,
    "Mathematics: ∑_{i=1}^{n} i = n(n+1)/2, √2 ≈ 1.41421",
]


def read_safetensors(path):
    """{name: np.ndarray} of a single safetensors file (F32 / BF16 / F16)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, en = e["data_offsets"]
        raw = np.frombuffer(data[b:en], dtype={"F32": np.float32, "BF16": np.uint16, "F16": np.float16}[e["dtype"]])
        if e["dtype"] == "BF16":
            raw = (raw.astype(np.uint32) << 16).view(np.float32)
        out[name] = raw.astype(np.float32).reshape(e["shape"])
    return out


def unpermute(w, n_head):
    """transformers' _reverse_permute_weights: undo llama.cpp's permute(w, n_head, n_head_kv)."""
    dim = w.shape[0] // n_head // 2
    return w.reshape(n_head, dim, 2, *w.shape[1:]).swapaxes(2, 1).reshape(w.shape)


def check_tensors(resp, hf, failures):
    if sorted(resp) != sorted(hf):
        failures.append(f"tensor names differ: only resp {sorted(set(resp) - set(hf))[:5]}, "
                        f"only transformers {sorted(set(hf) - set(resp))[:5]}")
    n_same = 0
    for name in sorted(set(resp) & set(hf)):
        a, b = resp[name], hf[name]
        if a.shape != b.shape:
            failures.append(f"{name}: shape {a.shape} vs {b.shape}")
        elif not np.array_equal(a.view(np.uint32), b.view(np.uint32)):
            diff = np.abs(a - b).max()
            failures.append(f"{name}: values differ (max |diff| {diff:.3g}, "
                            f"{np.count_nonzero(a != b)} of {a.size} elements)")
        else:
            n_same += 1
    print(f"tensors vs transformers: {n_same}/{len(resp)} bit-identical")


def check_against_gguf(resp, gguf_path, config, failures):
    import gguf
    reader = gguf.GGUFReader(gguf_path)
    arch = config["model_type"]
    names = {
        "token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
        "output.weight": "lm_head.weight",
    }
    per_layer = {
        "attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
        "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj", "attn_q_norm": "self_attn.q_norm",
        "attn_k_norm": "self_attn.k_norm", "ffn_norm": "post_attention_layernorm", "ffn_gate": "mlp.gate_proj",
        "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj",
    }
    n_same = 0
    types = {}
    for t in reader.tensors:
        if t.name == "rope_freqs.weight":
            continue
        if t.name in names:
            hf = names[t.name]
        else:
            _, layer, part, kind = t.name.split(".")
            hf = f"model.layers.{layer}.{per_layer[part]}.{kind}"
        w = gguf.dequantize(t.data, t.tensor_type).astype(np.float32)
        if arch == "llama" and (".attn_q." in t.name or ".attn_k." in t.name):
            heads = config["num_attention_heads"] if ".attn_q." in t.name else config["num_key_value_heads"]
            w = unpermute(w, heads)
        types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + 1
        got = resp.get(hf)
        if got is None:
            failures.append(f"{hf} missing from resp's import")
        elif got.shape != w.shape or not np.array_equal(got.view(np.uint32), w.view(np.uint32)):
            failures.append(f"{hf}: differs from gguf.dequantize ({t.tensor_type.name})")
        else:
            n_same += 1
    print(f"tensors vs gguf.dequantize: {n_same} bit-identical ({types})")


def check_config(resp_dir, hf_dir, failures):
    a = json.load(open(os.path.join(resp_dir, "config.json")))
    b = json.load(open(os.path.join(hf_dir, "config.json")))
    rope_b = b.get("rope_theta", (b.get("rope_parameters") or {}).get("rope_theta"))
    keys = ["vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "num_key_value_heads", "head_dim", "max_position_embeddings", "rms_norm_eps", "tie_word_embeddings",
            "bos_token_id", "eos_token_id", "pad_token_id", "model_type", "hidden_act"]
    for k in keys:
        if k in b and a.get(k) != b[k]:
            failures.append(f"config.json {k}: resp {a.get(k)!r}, transformers {b[k]!r}")
    if a.get("rope_theta") != rope_b:
        failures.append(f"config.json rope_theta: resp {a.get('rope_theta')}, transformers {rope_b}")
    print("config.json: compared", ", ".join(k for k in keys if k in b), "and rope_theta")


def check_tokenizer(resp_dir, hf_dir, failures, allow_digit_diffs):
    from tokenizers import Tokenizer
    a = Tokenizer.from_file(os.path.join(resp_dir, "tokenizer.json"))
    b = Tokenizer.from_file(os.path.join(hf_dir, "tokenizer.json"))
    if a.get_vocab(with_added_tokens=True) != b.get_vocab(with_added_tokens=True):
        failures.append("tokenizer vocabularies differ")
    same = 0
    for text in TEXTS:
        ia = a.encode(text, add_special_tokens=True).ids
        ib = b.encode(text, add_special_tokens=True).ids
        if ia == ib:
            same += 1
            continue
        digits = any(c.isdigit() for c in text)
        msg = f"tokenizer ids differ on {text[:40]!r}: resp {ia[:12]}.. transformers {ib[:12]}.."
        if digits and allow_digit_diffs:
            print("  (expected, digits) " + msg)
        else:
            failures.append(msg)
        if a.decode(ia, skip_special_tokens=False) != text and "<|" not in text:
            failures.append(f"resp's tokenizer does not round-trip {text[:40]!r}")
    print(f"tokenizer: {same}/{len(TEXTS)} texts encode identically")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--resp-dir", required=True)
    ap.add_argument("--hf-dir", required=True)
    ap.add_argument("--gguf")
    ap.add_argument("--allow-digit-diffs", action="store_true",
                    help="list tokenizer differences on texts with digits instead of failing")
    args = ap.parse_args()
    failures = []
    resp = read_safetensors(os.path.join(args.resp_dir, "model.safetensors"))
    hf = read_safetensors(os.path.join(args.hf_dir, "model.safetensors"))
    check_tensors(resp, hf, failures)
    config = json.load(open(os.path.join(args.resp_dir, "config.json")))
    if args.gguf:
        check_against_gguf(resp, args.gguf, config, failures)
    check_config(args.resp_dir, args.hf_dir, failures)
    check_tokenizer(args.resp_dir, args.hf_dir, failures, args.allow_digit_diffs)
    for f in failures:
        print("FAIL:", f)
    print("PASS" if not failures else f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
