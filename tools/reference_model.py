#!/usr/bin/python3
"""Independent PyTorch reference implementation of the decoder-only models that
`resp` supports (Qwen3ForCausalLM, Qwen2ForCausalLM, LlamaForCausalLM).

Written from scratch (no `transformers`, no `safetensors`), following the
semantics of the Hugging Face `transformers` implementations:

    x = embed_tokens[tokens]
    for each layer:
        h = rmsnorm(x, input_layernorm)
        x = x + o_proj(attention(h))
        h = rmsnorm(x, post_attention_layernorm)
        x = x + down_proj(silu(gate_proj(h)) * up_proj(h))
    logits = lm_head(rmsnorm(x, norm))        # lm_head = embed_tokens when tied

Everything is plain differentiable torch ops, so the functions can be used with
autograd.  The compute dtype is chosen by the caller (`dtype=`); the test
fixtures use torch.float64.  RoPE tables are always computed in float64 and
then cast to the compute dtype (transformers computes them in float32; the
difference is far below any test tolerance).

Public API
    head_dim(config), rope_theta(config), rope_inv_freq(config)
    forward_logits(config, weights, tokens, dtype=None) -> [T, vocab]
    token_logprobs(config, weights, tokens, dtype=None) -> [T-1]
    load_safetensors(path) / load_model_dir(dir) -> (config, {name: tensor})
    save_safetensors(path, {name: tensor}, metadata=None)

Command line (prints one JSON line per input sequence):
    /usr/bin/python3 tools/reference_model.py MODEL_DIR INPUT.jsonl [--dtype float64|float32]
INPUT.jsonl lines look like {"id": "s0", "tokens": [1, 2, 3]}; output lines
are {"id": ..., "tokens": [...], "logprobs": [...]}.
"""

import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import torch

SUPPORTED_ARCHITECTURES = ("Qwen3ForCausalLM", "Qwen2ForCausalLM", "LlamaForCausalLM")


# --------------------------------------------------------------------------
# Config helpers
# --------------------------------------------------------------------------

def architecture(config):
    archs = config.get("architectures") or []
    if len(archs) != 1 or archs[0] not in SUPPORTED_ARCHITECTURES:
        raise ValueError(f"unsupported architectures {archs!r}")
    return archs[0]


def head_dim(config):
    """config["head_dim"] when present (and not null), else hidden_size // num_attention_heads."""
    hd = config.get("head_dim")
    if hd is not None:
        return int(hd)
    return int(config["hidden_size"]) // int(config["num_attention_heads"])


def num_kv_heads(config):
    n = config.get("num_key_value_heads")
    return int(n) if n is not None else int(config["num_attention_heads"])


def _rope_dicts(config):
    """The dicts that may carry RoPE settings: rope_parameters (transformers v5) and
    rope_scaling (transformers v4).  Either may be absent or null."""
    out = []
    for key in ("rope_parameters", "rope_scaling"):
        d = config.get(key)
        if isinstance(d, dict):
            out.append(d)
    return out


def rope_theta(config):
    if config.get("rope_theta") is not None:
        return float(config["rope_theta"])
    for d in _rope_dicts(config):
        if d.get("rope_theta") is not None:
            return float(d["rope_theta"])
    raise ValueError("config has neither rope_theta nor rope_parameters.rope_theta")


def rope_scaling(config):
    """Returns (rope_type, params dict).  rope_type is "default" when unscaled."""
    for d in _rope_dicts(config):
        t = d.get("rope_type", d.get("type"))
        if t is not None and t != "default":
            return t, d
    return "default", {}


def rope_inv_freq(config):
    """float64 tensor [head_dim / 2] of inverse frequencies, Llama-3 scaling applied."""
    hd = head_dim(config)
    if hd % 2 != 0:
        raise ValueError("head_dim must be even for RoPE")
    if config.get("partial_rotary_factor", 1.0) != 1.0:
        raise NotImplementedError("partial_rotary_factor != 1 is not supported")
    theta = rope_theta(config)
    i = torch.arange(0, hd, 2, dtype=torch.float64)  # = 2 * index
    inv_freq = 1.0 / (theta ** (i / hd))

    rtype, p = rope_scaling(config)
    if rtype == "default":
        return inv_freq
    if rtype != "llama3":
        raise NotImplementedError(f"rope type {rtype!r} not supported")
    factor = float(p["factor"])
    low_freq_factor = float(p["low_freq_factor"])
    high_freq_factor = float(p["high_freq_factor"])
    old_ctx = float(p["original_max_position_embeddings"])
    low_freq_wavelen = old_ctx / low_freq_factor
    high_freq_wavelen = old_ctx / high_freq_factor
    out = []
    for f in inv_freq.tolist():
        wavelen = 2.0 * math.pi / f
        if wavelen > low_freq_wavelen:
            out.append(f / factor)
        elif wavelen < high_freq_wavelen:
            out.append(f)
        else:
            smooth = (old_ctx / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
            out.append((1.0 - smooth) * f / factor + smooth * f)
    return torch.tensor(out, dtype=torch.float64)


def rope_cos_sin(config, T):
    """cos, sin float64 tensors [T, head_dim] (HF layout: frequencies repeated twice)."""
    inv_freq = rope_inv_freq(config)
    pos = torch.arange(T, dtype=torch.float64)
    freqs = pos[:, None] * inv_freq[None, :]          # [T, hd/2]
    emb = torch.cat([freqs, freqs], dim=-1)           # [T, hd]
    return emb.cos(), emb.sin()


# --------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------

def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * w


def linear(x, w, b=None):
    y = x @ w.t()
    if b is not None:
        y = y + b
    return y


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def apply_rope(x, cos, sin):
    """x: [T, heads, hd]; cos/sin: [T, hd]."""
    return x * cos[:, None, :] + rotate_half(x) * sin[:, None, :]


def _expected_biases(config, arch):
    """Which projections carry a bias, per transformers' module definitions."""
    if arch == "Qwen2ForCausalLM":
        attn = {"q_proj", "k_proj", "v_proj"}
    elif config.get("attention_bias", False):
        attn = {"q_proj", "k_proj", "v_proj", "o_proj"}
    else:
        attn = set()
    mlp = {"gate_proj", "up_proj", "down_proj"} if config.get("mlp_bias", False) else set()
    return attn, mlp


def _check_config(config, arch):
    act = config.get("hidden_act", "silu")
    if act != "silu":
        raise NotImplementedError(f"hidden_act {act!r} not supported")
    if arch == "Qwen2ForCausalLM" and config.get("use_sliding_window", False):
        raise NotImplementedError("Qwen2 sliding-window attention not supported")


# --------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------

def forward_logits(config, weights, tokens, dtype=None):
    """Logits [T, vocab_size] for the token sequence `tokens` (list or 1-D tensor).

    weights: dict name -> torch tensor (HF names).  They are converted with
    `.to(dtype)` (differentiable) when dtype is given; otherwise the dtype of
    model.embed_tokens.weight is used.
    """
    arch = architecture(config)
    _check_config(config, arch)
    if dtype is None:
        dtype = weights["model.embed_tokens.weight"].dtype

    def W(name):
        return weights[name].to(dtype)

    def W_opt(name, required):
        if name in weights:
            return weights[name].to(dtype)
        if required:
            raise KeyError(f"missing tensor {name}")
        return None

    tokens = torch.as_tensor(tokens, dtype=torch.long).reshape(-1)
    T = int(tokens.shape[0])
    H = int(config["num_attention_heads"])
    KV = num_kv_heads(config)
    hd = head_dim(config)
    if H % KV != 0:
        raise ValueError("num_attention_heads must be a multiple of num_key_value_heads")
    group = H // KV
    eps = float(config["rms_norm_eps"])
    L = int(config["num_hidden_layers"])
    qk_norm = arch == "Qwen3ForCausalLM"
    attn_bias, mlp_bias = _expected_biases(config, arch)

    embed = W("model.embed_tokens.weight")
    x = embed[tokens]                                  # [T, hidden]
    if T == 0:
        return x.new_zeros((0, embed.shape[0]))

    cos, sin = rope_cos_sin(config, T)
    cos = cos.to(dtype)
    sin = sin.to(dtype)
    scale = 1.0 / math.sqrt(hd)
    causal = torch.ones(T, T, dtype=torch.bool).tril()  # [query, key]
    kv_index = torch.arange(H) // group                 # query head -> kv head

    for i in range(L):
        p = f"model.layers.{i}."
        h = rms_norm(x, W(p + "input_layernorm.weight"), eps)

        def proj(name, hh):
            return linear(hh, W(p + f"self_attn.{name}.weight"),
                          W_opt(p + f"self_attn.{name}.bias", name in attn_bias))

        q = proj("q_proj", h).reshape(T, H, hd)
        k = proj("k_proj", h).reshape(T, KV, hd)
        v = proj("v_proj", h).reshape(T, KV, hd)
        if qk_norm:
            q = rms_norm(q, W(p + "self_attn.q_norm.weight"), eps)
            k = rms_norm(k, W(p + "self_attn.k_norm.weight"), eps)
        q = apply_rope(q, cos, sin)
        k = apply_rope(k, cos, sin)

        k = k[:, kv_index, :]                          # [T, H, hd]
        v = v[:, kv_index, :]
        scores = torch.einsum("qhd,khd->hqk", q, k) * scale       # [H, Tq, Tk]
        scores = scores.masked_fill(~causal, float("-inf"))
        probs = torch.softmax(scores, dim=-1)
        attn = torch.einsum("hqk,khd->qhd", probs, v).reshape(T, H * hd)
        x = x + proj("o_proj", attn)

        h = rms_norm(x, W(p + "post_attention_layernorm.weight"), eps)

        def mlp(name, hh):
            return linear(hh, W(p + f"mlp.{name}.weight"),
                          W_opt(p + f"mlp.{name}.bias", name in mlp_bias))

        x = x + mlp("down_proj", torch.nn.functional.silu(mlp("gate_proj", h)) * mlp("up_proj", h))

    x = rms_norm(x, W("model.norm.weight"), eps)
    if config.get("tie_word_embeddings", False):
        head = embed
    else:
        head = W("lm_head.weight")
    return x @ head.t()


def logprobs_from_logits(logits, tokens):
    """Entry t = log_softmax(logits[t])[tokens[t+1]]; T-1 entries."""
    tokens = torch.as_tensor(tokens, dtype=torch.long).reshape(-1)
    if tokens.shape[0] < 2:
        return logits.new_zeros((0,))
    lp = torch.log_softmax(logits[:-1], dim=-1)
    return lp.gather(1, tokens[1:, None]).squeeze(1)


def token_logprobs(config, weights, tokens, dtype=None):
    """Log-probabilities of tokens[1:] given their prefixes: tensor [T-1]."""
    return logprobs_from_logits(forward_logits(config, weights, tokens, dtype), tokens)


# --------------------------------------------------------------------------
# safetensors I/O (minimal, self-contained)
# --------------------------------------------------------------------------

_DTYPES = {"F32": (np.float32, 4), "F64": (np.float64, 8), "F16": (np.float16, 2), "BF16": (None, 2)}


def load_safetensors(path):
    """Reads a .safetensors file.  BF16/F16/F32 tensors are returned as float32
    (exact upcast), F64 as float64."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt = info["dtype"]
        if dt not in _DTYPES:
            raise ValueError(f"{path}: unsupported dtype {dt} for {name}")
        b, e = info["data_offsets"]
        shape = info["shape"]
        buf = data[b:e]
        if dt == "BF16":
            u16 = np.frombuffer(buf, dtype="<u2").astype(np.uint32)
            arr = (u16 << 16).view(np.float32)
        else:
            np_dt, _ = _DTYPES[dt]
            arr = np.frombuffer(buf, dtype=np.dtype(np_dt).newbyteorder("<"))
            if np_dt == np.float16:
                arr = arr.astype(np.float32)
        out[name] = torch.from_numpy(np.array(arr, dtype=arr.dtype.newbyteorder("="))).reshape(shape)
    return out


def save_safetensors(path, tensors, metadata=None):
    """Writes {name: torch tensor} (float32, float64 or bfloat16) to `path`.
    Tensors are stored in the given order, contiguous, little-endian."""
    header = {}
    chunks = []
    offset = 0
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        if t.dtype == torch.float32:
            dt, b = "F32", t.numpy().astype("<f4").tobytes()
        elif t.dtype == torch.float64:
            dt, b = "F64", t.numpy().astype("<f8").tobytes()
        elif t.dtype == torch.bfloat16:
            dt, b = "BF16", t.view(torch.int16).numpy().astype("<i2").tobytes()
        else:
            raise ValueError(f"unsupported dtype {t.dtype} for {name}")
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        chunks.append(b)
        offset += len(b)
    header["__metadata__"] = dict(metadata or {"format": "pt"})
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * ((-len(hb)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for c in chunks:
            f.write(c)
    return 8 + len(hb) + offset


def load_model_dir(model_dir):
    """(config dict, weights dict) from an HF-style directory (single file or sharded)."""
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    index = os.path.join(model_dir, "model.safetensors.index.json")
    weights = {}
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    for fn in files:
        part = load_safetensors(os.path.join(model_dir, fn))
        dup = set(part) & set(weights)
        if dup:
            raise ValueError(f"tensors in more than one shard: {sorted(dup)}")
        weights.update(part)
    return config, weights


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir")
    ap.add_argument("input_jsonl")
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    args = ap.parse_args(argv)
    dtype = getattr(torch, args.dtype)
    config, weights = load_model_dir(args.model_dir)
    with open(args.input_jsonl) as f:
        for line in f:
            if not line.strip():
                continue
            rec = json.loads(line)
            with torch.no_grad():
                lp = token_logprobs(config, weights, rec["tokens"], dtype=dtype)
            print(json.dumps({"id": rec["id"], "tokens": rec["tokens"], "logprobs": lp.tolist()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
