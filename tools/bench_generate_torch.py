#!/usr/bin/python3
"""PyTorch reference for `resp bench generate`: the same random-weight Qwen3 model, greedy
generation with a preallocated KV cache, on the same number of CPU threads.

    /usr/bin/python3 tools/bench_generate_torch.py [--config qwen3-100m] [--batches 1,8,32]
        [--prompt-len 256] [--new-tokens 256] [--threads N] [--json FILE]
    /usr/bin/python3 tools/bench_generate_torch.py --check MODEL_DIR --prompt 1,2,3 --new-tokens 8

Needs Debian's python3-torch (the pyenv `python3` has no torch). The model follows the Hugging
Face Qwen3 semantics (as tools/reference_model.py): RMSNorm, q/k per-head RMSNorm before
rotate-half RoPE, grouped-query attention, SwiGLU MLP, untied lm_head. The implementation is what
a careful PyTorch user would write for CPU inference: torch.inference_mode, float32, fused
q/k/v and gate/up projections, a [B, Hkv, S, D] cache written in place (no concatenation), GQA by
reshaping the queries into groups (no repeat of K/V), causal mask only for the prefill.

Reported per batch size B (B prompts of --prompt-len random tokens, prefilled in one batched
forward, then --new-tokens greedy decode steps of B tokens): prefill tokens/s and decode tokens/s.
--check runs greedy generation on a model directory (e.g. tests/fixtures/models/qwen3-tiny-demo)
and prints the tokens, to compare with `resp generate --temperature 0`.
"""

import argparse
import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_threads  # noqa: F401  (before torch: sizes the BLAS pool from --threads)
import torch

PRESETS = {
    "qwen3-100m": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                       num_key_value_heads=4, head_dim=64, intermediate_size=2048,
                       vocab_size=32000, max_position_embeddings=4096, rms_norm_eps=1e-6,
                       rope_theta=1000000.0, tie_word_embeddings=False),
    "qwen3-tiny": dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, head_dim=32, intermediate_size=256,
                       vocab_size=1000, max_position_embeddings=4096, rms_norm_eps=1e-6,
                       rope_theta=1000000.0, tie_word_embeddings=False),
}


class Qwen3:
    def __init__(self, cfg, weights=None, seed=1234, std=0.02):
        self.cfg = cfg
        H = cfg["hidden_size"]
        self.L = cfg["num_hidden_layers"]
        self.hq = cfg["num_attention_heads"]
        self.hkv = cfg["num_key_value_heads"]
        self.D = cfg.get("head_dim") or H // self.hq
        self.F = cfg["intermediate_size"]
        self.V = cfg["vocab_size"]
        self.eps = cfg.get("rms_norm_eps", 1e-6)
        theta = cfg.get("rope_theta", 10000.0)
        self.inv_freq = 1.0 / (theta ** (torch.arange(0, self.D, 2, dtype=torch.float64) / self.D))
        if weights is None:
            weights = self._random(seed, std)
        self._pack(weights)

    def _random(self, seed, std):
        g = torch.Generator().manual_seed(seed)
        H, D, F = self.cfg["hidden_size"], self.D, self.F

        def mat(o, i):
            return torch.randn(o, i, generator=g) * std

        w = {"model.embed_tokens.weight": mat(self.V, H), "model.norm.weight": torch.ones(H),
             "lm_head.weight": mat(self.V, H)}
        for l in range(self.L):
            p = f"model.layers.{l}."
            w[p + "input_layernorm.weight"] = torch.ones(H)
            w[p + "post_attention_layernorm.weight"] = torch.ones(H)
            w[p + "self_attn.q_proj.weight"] = mat(self.hq * D, H)
            w[p + "self_attn.k_proj.weight"] = mat(self.hkv * D, H)
            w[p + "self_attn.v_proj.weight"] = mat(self.hkv * D, H)
            w[p + "self_attn.o_proj.weight"] = mat(H, self.hq * D)
            w[p + "self_attn.q_norm.weight"] = torch.ones(D)
            w[p + "self_attn.k_norm.weight"] = torch.ones(D)
            w[p + "mlp.gate_proj.weight"] = mat(F, H)
            w[p + "mlp.up_proj.weight"] = mat(F, H)
            w[p + "mlp.down_proj.weight"] = mat(H, F)
        return w

    def _pack(self, w):
        f = lambda t: t.to(torch.float32).contiguous()
        self.embed = f(w["model.embed_tokens.weight"])
        self.norm = f(w["model.norm.weight"])
        self.lm_head = f(w.get("lm_head.weight", w["model.embed_tokens.weight"]))
        self.layers = []
        for l in range(self.L):
            p = f"model.layers.{l}."
            self.layers.append(dict(
                ln1=f(w[p + "input_layernorm.weight"]), ln2=f(w[p + "post_attention_layernorm.weight"]),
                qkv=f(torch.cat([w[p + "self_attn.q_proj.weight"], w[p + "self_attn.k_proj.weight"],
                                 w[p + "self_attn.v_proj.weight"]])),
                o=f(w[p + "self_attn.o_proj.weight"]),
                qn=f(w[p + "self_attn.q_norm.weight"]), kn=f(w[p + "self_attn.k_norm.weight"]),
                gu=f(torch.cat([w[p + "mlp.gate_proj.weight"], w[p + "mlp.up_proj.weight"]])),
                down=f(w[p + "mlp.down_proj.weight"])))

    def rms(self, x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * w

    def new_cache(self, B, S):
        return [(torch.zeros(B, self.hkv, S, self.D), torch.zeros(B, self.hkv, S, self.D))
                for _ in range(self.L)]

    def rope(self, x, cos, sin):  # x [B, h, T, D]
        h = self.D // 2
        x1, x2 = x[..., :h], x[..., h:]
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)

    def forward(self, tokens, cache, pos):
        """tokens [B, T] at positions pos..pos+T-1 (same for every row); returns last-token
        logits [B, V] and writes the cache."""
        B, T = tokens.shape
        D, hq, hkv, G = self.D, self.hq, self.hkv, self.hq // self.hkv
        ang = torch.arange(pos, pos + T, dtype=torch.float64)[:, None] * self.inv_freq[None, :]
        cos = torch.cat([ang.cos(), ang.cos()], -1).to(torch.float32)[:, : D // 2]
        sin = torch.cat([ang.sin(), ang.sin()], -1).to(torch.float32)[:, : D // 2]
        x = self.embed[tokens]
        S = pos + T
        mask = None
        if T > 1:
            mask = torch.full((T, S), float("-inf")).triu(pos + 1)
        scale = 1.0 / math.sqrt(D)
        for lw, (kc, vc) in zip(self.layers, cache):
            h = self.rms(x, lw["ln1"])
            qkv = h @ lw["qkv"].t()
            q = qkv[..., : hq * D].view(B, T, hq, D)
            k = qkv[..., hq * D: (hq + hkv) * D].view(B, T, hkv, D)
            v = qkv[..., (hq + hkv) * D:].view(B, T, hkv, D)
            q = self.rope(self.rms(q, lw["qn"]).transpose(1, 2), cos, sin)
            k = self.rope(self.rms(k, lw["kn"]).transpose(1, 2), cos, sin)
            kc[:, :, pos:S] = k
            vc[:, :, pos:S] = v.transpose(1, 2)
            qg = q.reshape(B, hkv, G * T, D)  # heads of a group share K/V
            att = (qg @ kc[:, :, :S].transpose(-1, -2)) * scale  # [B, hkv, G*T, S]
            if mask is not None:
                att = att.view(B, hkv, G, T, S) + mask
                att = att.view(B, hkv, G * T, S)
            att = att.softmax(-1)
            o = (att @ vc[:, :, :S]).view(B, hq, T, D).transpose(1, 2).reshape(B, T, hq * D)
            x = x + o @ lw["o"].t()
            h = self.rms(x, lw["ln2"])
            gu = h @ lw["gu"].t()
            x = x + (torch.nn.functional.silu(gu[..., : self.F]) * gu[..., self.F:]) @ lw["down"].t()
        return self.rms(x[:, -1], self.norm) @ self.lm_head.t()

    def generate(self, prompts, new_tokens):
        """Greedy; prompts [B, P]. Returns (tokens [B, new], prefill_s, decode_s)."""
        B, P = prompts.shape
        cache = self.new_cache(B, P + new_tokens)
        t0 = time.perf_counter()
        logits = self.forward(prompts, cache, 0)
        nxt = logits.argmax(-1)
        t1 = time.perf_counter()
        out = [nxt]
        for s in range(1, new_tokens):
            logits = self.forward(nxt[:, None], cache, P + s - 1)
            nxt = logits.argmax(-1)
            out.append(nxt)
        t2 = time.perf_counter()
        return torch.stack(out, 1), t1 - t0, t2 - t1


def bench(args):
    cfg = PRESETS[args.config] if args.config in PRESETS else json.load(open(args.config))
    model = Qwen3(cfg)
    nparams = sum(t.numel() for t in [model.embed, model.norm, model.lm_head]) + sum(
        t.numel() for lw in model.layers for t in lw.values())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.config}, "
          f"{nparams / 1e6:.1f}M params, prompts {args.prompt_len} tokens, "
          f"{args.new_tokens} new tokens, greedy", flush=True)
    g = torch.Generator().manual_seed(7)
    model.generate(torch.randint(0, model.V, (2, 32), generator=g), 4)  # warm-up
    runs = []
    for B in [int(b) for b in args.batches.split(",")]:
        prompts = torch.randint(0, model.V, (B, args.prompt_len), generator=g)
        _, pre, dec = model.generate(prompts, args.new_tokens)
        steps = args.new_tokens - 1
        r = dict(batch=B, prefill_seconds=pre, prefill_tokens_per_s=B * args.prompt_len / pre,
                 decode_steps=steps, decode_seconds=dec,
                 decode_tokens_per_s=B * steps / dec if dec > 0 else 0.0,
                 decode_ms_per_step=1e3 * dec / steps if steps else 0.0)
        print(f"  batch {B:3d}: prefill {r['prefill_tokens_per_s']:8.0f} tok/s | decode "
              f"{r['decode_tokens_per_s']:8.1f} tok/s ({r['decode_ms_per_step']:.2f} ms/step)",
              flush=True)
        runs.append(r)
    out = dict(bench="generate-torch", config=args.config, params=nparams,
               prompt_len=args.prompt_len, new_tokens=args.new_tokens,
               threads=torch.get_num_threads(), torch=torch.__version__, runs=runs)
    print(json.dumps(out))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


def check(args):
    import reference_model
    cfg, weights = reference_model.load_model_dir(args.check)
    model = Qwen3(cfg, weights=weights)
    prompt = torch.tensor([[int(t) for t in args.prompt.split(",")]])
    toks, _, _ = model.generate(prompt, args.new_tokens)
    print(json.dumps({"prompt": prompt[0].tolist(), "output": toks[0].tolist()}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="qwen3-100m")
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--prompt-len", type=int, default=256)
    ap.add_argument("--new-tokens", type=int, default=256)
    ap.add_argument("--threads", type=int, default=0, help="0: all cores")
    ap.add_argument("--json")
    ap.add_argument("--check", metavar="MODEL_DIR")
    ap.add_argument("--prompt", default="1,2,3,4")
    args = ap.parse_args()
    torch.set_num_threads(args.threads if args.threads > 0 else (os.cpu_count() or 1))
    with torch.inference_mode():
        check(args) if args.check else bench(args)


if __name__ == "__main__":
    main()
