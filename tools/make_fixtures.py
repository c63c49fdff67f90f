#!/usr/bin/python3
"""Generate the tiny random-weight model fixtures under tests/fixtures/models/.

Usage:
    /usr/bin/python3 tools/make_fixtures.py [--out tests/fixtures/models] [--only NAME ...]
    /usr/bin/python3 tools/make_fixtures.py --check [--out tests/fixtures/models]

Needs torch and numpy only (Debian's /usr/bin/python3); no transformers, no
safetensors package.  Output is deterministic: every model has its own
torch.manual_seed, and rerunning rewrites byte-identical files.

For every model NAME this writes tests/fixtures/models/NAME/:
    config.json                 Hugging Face style config
    generation_config.json      {"eos_token_id", "temperature", "top_p", "top_k"}
    model.safetensors           (or model-0000k-of-0000n.safetensors shards +
                                 model.safetensors.index.json)
    input.jsonl                 {"id": "s0", "tokens": [...]} per line (CLI input)
    reference.jsonl             {"id": "s0", "tokens": [...], "logprobs": [...]}
                                logprobs[t] = log_softmax(logits[t])[tokens[t+1]],
                                computed by tools/reference_model.py in float64 from
                                the weights as read back from the written files
                                (bf16 files: the bf16 values upcast exactly).

--check recomputes reference.jsonl from the files on disk and compares it with
the stored one (max abs difference must be < 1e-12).
"""

import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_model as rm  # noqa: E402

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "tests", "fixtures", "models")

SEQ_LENGTHS = (1, 2, 9, 37, 80)
VOCAB = 263
BOS, EOS = 256, 257

# Standard deviations of the random weights (chosen so that attention is far
# from uniform, every sub-block contributes visibly to the residual stream, and
# the next-token log-probs are spread out: std of logprobs ~1).
STD = {
    "embed": 0.1,
    "lm_head": 0.1,
    "q": 0.1,
    "k": 0.1,
    "v": 0.08,
    "o": 0.08,
    "gate": 0.08,
    "up": 0.08,
    "down": 0.06,
    "bias": 0.05,
    "norm_noise": 0.1,   # RMSNorm weights are 1 + N(0, norm_noise)
}


# --------------------------------------------------------------------------
# Model specifications
# --------------------------------------------------------------------------

def qwen3_config(hidden, heads, kv, hd, inter, layers, tied, dtype, theta=1000000):
    return {
        "architectures": ["Qwen3ForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": BOS,
        "eos_token_id": EOS,
        "head_dim": hd,
        "hidden_act": "silu",
        "hidden_size": hidden,
        "initializer_range": 0.02,
        "intermediate_size": inter,
        "max_position_embeddings": 512,
        "max_window_layers": layers,
        "model_type": "qwen3",
        "num_attention_heads": heads,
        "num_hidden_layers": layers,
        "num_key_value_heads": kv,
        "rms_norm_eps": 1e-06,
        "rope_scaling": None,
        "rope_theta": theta,
        "sliding_window": None,
        "tie_word_embeddings": tied,
        "torch_dtype": dtype,
        "transformers_version": "4.51.0",
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": VOCAB,
    }


def qwen2_config():
    return {
        "architectures": ["Qwen2ForCausalLM"],
        "attention_dropout": 0.0,
        "bos_token_id": BOS,
        "eos_token_id": EOS,
        "hidden_act": "silu",
        "hidden_size": 72,
        "initializer_range": 0.02,
        "intermediate_size": 100,
        "max_position_embeddings": 512,
        "max_window_layers": 3,
        "model_type": "qwen2",
        "num_attention_heads": 6,
        "num_hidden_layers": 3,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-06,
        "rope_scaling": None,
        "rope_theta": 10000.0,
        "sliding_window": 512,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "transformers_version": "4.43.1",
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": VOCAB,
    }


def llama31_config():
    return {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": BOS,
        "eos_token_id": [EOS, 258, 259],   # list, as in Llama-3.1-*-Instruct
        "hidden_act": "silu",
        "hidden_size": 72,
        "initializer_range": 0.02,
        "intermediate_size": 100,
        "max_position_embeddings": 512,
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": 6,
        "num_hidden_layers": 3,
        "num_key_value_heads": 3,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_scaling": {
            "factor": 8.0,
            "high_freq_factor": 4.0,
            "low_freq_factor": 1.0,
            "original_max_position_embeddings": 128,
            "rope_type": "llama3",
        },
        "rope_theta": 500000.0,
        "tie_word_embeddings": True,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.43.0",
        "use_cache": True,
        "vocab_size": VOCAB,
    }


def llama_mqa_config():
    # transformers v5 style: RoPE only in the nested rope_parameters dict.
    return {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": BOS,
        "dtype": "float32",
        "eos_token_id": EOS,
        "head_dim": 16,
        "hidden_act": "silu",
        "hidden_size": 64,
        "initializer_range": 0.02,
        "intermediate_size": 88,
        "max_position_embeddings": 512,
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 1,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"},
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "transformers_version": "5.0.0",
        "use_cache": True,
        "vocab_size": VOCAB,
    }


# name, seed, config, storage dtype, shard plan (None = single file)
def model_specs():
    return [
        ("qwen3-f32", 1001, qwen3_config(72, 6, 2, 20, 100, 3, False, "float32"), torch.float32, None),
        ("qwen3-tied-bf16", 1002, qwen3_config(72, 6, 2, 20, 100, 3, True, "bfloat16"), torch.bfloat16, None),
        ("qwen2-sharded-f32", 1003, qwen2_config(), torch.float32, "qwen2"),
        ("llama31-bf16", 1004, llama31_config(), torch.bfloat16, None),
        ("llama-mqa-f32", 1005, llama_mqa_config(), torch.float32, None),
        ("qwen3-tiny-demo", 1006, qwen3_config(64, 4, 2, 16, 96, 2, False, "float32"), torch.float32, None),
    ]


def shard_of(plan, name):
    """Shard index (0-based) of tensor `name` for a shard plan."""
    if plan is None:
        return 0
    assert plan == "qwen2"
    # Shard 1: embeddings, layer 0, and layer 1 up to and including its
    # attention.  Shard 2: the rest of layer 1 (post_attention_layernorm, mlp),
    # layer 2, final norm, lm_head.  So one layer is split across the shards.
    if name == "model.embed_tokens.weight":
        return 0
    if name.startswith("model.layers."):
        layer = int(name.split(".")[2])
        if layer == 0:
            return 0
        if layer == 1:
            return 0 if (".self_attn." in name or ".input_layernorm." in name) else 1
        return 1
    return 1


# --------------------------------------------------------------------------
# Weight generation
# --------------------------------------------------------------------------

def make_weights(config, seed):
    """Ordered dict name -> float32 tensor, deterministic for a given seed."""
    torch.manual_seed(seed)
    arch = rm.architecture(config)
    hidden = config["hidden_size"]
    inter = config["intermediate_size"]
    H = config["num_attention_heads"]
    KV = rm.num_kv_heads(config)
    hd = rm.head_dim(config)
    V = config["vocab_size"]

    def normal(shape, std):
        return torch.randn(*shape, dtype=torch.float32) * std

    def norm_w(n):
        return 1.0 + normal((n,), STD["norm_noise"])

    w = {}
    w["model.embed_tokens.weight"] = normal((V, hidden), STD["embed"])
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = norm_w(hidden)
        w[p + "self_attn.q_proj.weight"] = normal((H * hd, hidden), STD["q"])
        w[p + "self_attn.k_proj.weight"] = normal((KV * hd, hidden), STD["k"])
        w[p + "self_attn.v_proj.weight"] = normal((KV * hd, hidden), STD["v"])
        if arch == "Qwen2ForCausalLM":
            w[p + "self_attn.q_proj.bias"] = normal((H * hd,), STD["bias"])
            w[p + "self_attn.k_proj.bias"] = normal((KV * hd,), STD["bias"])
            w[p + "self_attn.v_proj.bias"] = normal((KV * hd,), STD["bias"])
        w[p + "self_attn.o_proj.weight"] = normal((hidden, H * hd), STD["o"])
        if arch == "Qwen3ForCausalLM":
            w[p + "self_attn.q_norm.weight"] = norm_w(hd)
            w[p + "self_attn.k_norm.weight"] = norm_w(hd)
        w[p + "post_attention_layernorm.weight"] = norm_w(hidden)
        w[p + "mlp.gate_proj.weight"] = normal((inter, hidden), STD["gate"])
        w[p + "mlp.up_proj.weight"] = normal((inter, hidden), STD["up"])
        w[p + "mlp.down_proj.weight"] = normal((hidden, inter), STD["down"])
    w["model.norm.weight"] = norm_w(hidden)
    if not config["tie_word_embeddings"]:
        w["lm_head.weight"] = normal((V, hidden), STD["lm_head"])
    return w


def make_sequences(seed, vocab):
    g = torch.Generator().manual_seed(seed + 500000)
    seqs = []
    for i, n in enumerate(SEQ_LENGTHS):
        toks = torch.randint(0, vocab, (n,), generator=g).tolist()
        seqs.append({"id": f"s{i}", "tokens": toks})
    return seqs


# --------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------

MANAGED_SUFFIXES = (".safetensors", ".safetensors.index.json", ".jsonl")
MANAGED_FILES = ("config.json", "generation_config.json")


def clean_dir(d):
    os.makedirs(d, exist_ok=True)
    for fn in os.listdir(d):
        if fn in MANAGED_FILES or fn.endswith(MANAGED_SUFFIXES):
            os.remove(os.path.join(d, fn))


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def write_jsonl(path, records):
    with open(path, "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")


def write_weights(d, weights, storage, plan):
    stored = {k: v.to(storage) for k, v in weights.items()}
    if plan is None:
        rm.save_safetensors(os.path.join(d, "model.safetensors"), stored)
        return
    nshards = 1 + max(shard_of(plan, k) for k in stored)
    names = [f"model-{i + 1:05d}-of-{nshards:05d}.safetensors" for i in range(nshards)]
    weight_map = {}
    total = 0
    for s in range(nshards):
        part = {k: v for k, v in stored.items() if shard_of(plan, k) == s}
        rm.save_safetensors(os.path.join(d, names[s]), part)
        for k, v in part.items():
            weight_map[k] = names[s]
            total += v.numel() * v.element_size()
    write_json(os.path.join(d, "model.safetensors.index.json"),
               {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))})


def compute_reference(config, weights, seqs):
    out = []
    with torch.no_grad():
        for s in seqs:
            lp = rm.token_logprobs(config, weights, s["tokens"], dtype=torch.float64)
            out.append({"id": s["id"], "tokens": s["tokens"], "logprobs": lp.tolist()})
    return out


def generate(out_root, name, seed, config, storage, plan):
    d = os.path.join(out_root, name)
    clean_dir(d)
    weights = make_weights(config, seed)
    write_json(os.path.join(d, "config.json"), config)
    write_json(os.path.join(d, "generation_config.json"),
               {"eos_token_id": config["eos_token_id"], "temperature": 0.6, "top_p": 0.95, "top_k": 20})
    write_weights(d, weights, storage, plan)

    # Reference log-probs from exactly what is in the files.
    cfg2, loaded = rm.load_model_dir(d)
    assert cfg2 == config
    assert list(sorted(loaded)) == list(sorted(weights)), "tensor set mismatch after reload"
    for k, v in weights.items():
        expect = v.to(storage).to(torch.float32)
        assert torch.equal(loaded[k], expect), f"{name}: {k} changed on reload"
    seqs = make_sequences(seed, config["vocab_size"])
    ref = compute_reference(config, loaded, seqs)
    write_jsonl(os.path.join(d, "input.jsonl"), seqs)
    write_jsonl(os.path.join(d, "reference.jsonl"), ref)

    all_lp = torch.tensor([x for r in ref for x in r["logprobs"]], dtype=torch.float64)
    size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
    print(f"{name:20s} {size:8d} bytes  logprobs: n={all_lp.numel()} mean={all_lp.mean():.3f} "
          f"std={all_lp.std():.3f} min={all_lp.min():.3f} max={all_lp.max():.3f}")


def check(out_root, name):
    d = os.path.join(out_root, name)
    config, weights = rm.load_model_dir(d)
    with open(os.path.join(d, "reference.jsonl")) as f:
        stored = [json.loads(line) for line in f if line.strip()]
    fresh = compute_reference(config, weights, [{"id": r["id"], "tokens": r["tokens"]} for r in stored])
    worst = 0.0
    for a, b in zip(stored, fresh):
        assert a["id"] == b["id"] and len(a["logprobs"]) == len(b["logprobs"])
        for x, y in zip(a["logprobs"], b["logprobs"]):
            worst = max(worst, abs(x - y))
    ok = worst < 1e-12
    print(f"{name:20s} max |stored - recomputed| = {worst:.3e}  {'OK' if ok else 'MISMATCH'}")
    return ok


def main(argv=None):
    ap = argparse.ArgumentParser(description="Generate tiny model fixtures for resp tests.")
    ap.add_argument("--out", default=DEFAULT_OUT, help="output root (default: tests/fixtures/models)")
    ap.add_argument("--only", nargs="*", help="generate only these model names")
    ap.add_argument("--check", action="store_true", help="verify existing fixtures instead of writing")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # bit-stable float64 reductions
    specs = model_specs()
    if args.only:
        unknown = set(args.only) - {s[0] for s in specs}
        if unknown:
            ap.error(f"unknown model(s): {sorted(unknown)}")
        specs = [s for s in specs if s[0] in args.only]
    if args.check:
        return 0 if all([check(args.out, s[0]) for s in specs]) else 1
    for spec in specs:
        generate(args.out, *spec)
    return 0


if __name__ == "__main__":
    sys.exit(main())
