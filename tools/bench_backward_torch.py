#!/usr/bin/python3
"""PyTorch reference for `resp bench backward`: the same Qwen3 model (random init, f32) in plain
PyTorch, forward + backward with autograd on random token sequences, reporting tokens/s and the
(fwd+bwd) / fwd time ratio.

The work matches the C++ benchmark: decode-only-like loss (positions predicting the first quarter
of the tokens weigh 0, the rest 1/n), the vocabulary projection only on the rows the loss needs
(from the first weighted row on; --full-logits projects every row), and weight gradients only for
the prunable matrices (q_proj, o_proj, gate/up/down_proj; --grads all for every parameter).
The forward reference is the same forward + loss under torch.no_grad().

Run with Debian's interpreter (torch 1.13): /usr/bin/python3 tools/bench_backward_torch.py
    --config qwen3-100m --seq 2048 --samples 2 --threads 2 --json out.json
"""
import argparse
import json
import math
import os
import sys
import time

PRESETS = {
    "qwen3-100m": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                       num_key_value_heads=4, head_dim=64, intermediate_size=2048,
                       vocab_size=32000, max_position_embeddings=4096, rms_norm_eps=1e-6,
                       rope_theta=1000000.0, tie_word_embeddings=False),
    "qwen3-tiny": dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, head_dim=32, intermediate_size=256,
                       vocab_size=1000, max_position_embeddings=4096),
}
DEFAULTS = dict(rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=False)


def load_config(name):
    if name in PRESETS:
        cfg = dict(PRESETS[name])
    else:
        with open(name) as f:
            cfg = json.load(f)
    for k, v in DEFAULTS.items():
        cfg.setdefault(k, v)
    cfg.setdefault("head_dim", cfg["hidden_size"] // cfg["num_attention_heads"])
    return cfg


def peak_rss_mib():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return -1.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="qwen3-100m")
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--samples", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="default: all cores")
    ap.add_argument("--grads", choices=["prunable", "all"], default="prunable")
    ap.add_argument("--full-logits", action="store_true", help="project every row, not only weighted ones")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    threads = args.threads if args.threads > 0 else (os.cpu_count() or 1)
    # Debian's torch uses the pthread OpenBLAS: its pool size comes from the environment.
    os.environ["OPENBLAS_NUM_THREADS"] = str(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    torch.manual_seed(1234)
    cfg = load_config(args.config)
    H, L = cfg["hidden_size"], cfg["num_hidden_layers"]
    hq, hkv, D = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    Fd, V, eps = cfg["intermediate_size"], cfg["vocab_size"], cfg["rms_norm_eps"]
    T = args.seq
    if T < 2 or T > cfg["max_position_embeddings"]:
        sys.exit(f"--seq must be in [2, {cfg['max_position_embeddings']}]")
    group = hq // hkv

    def mat(o, i, prunable):
        return torch.nn.Parameter(torch.randn(o, i) * 0.02,
                                  requires_grad=prunable or args.grads == "all")

    def norm(n):
        return torch.nn.Parameter(torch.ones(n), requires_grad=args.grads == "all")

    embed = torch.nn.Parameter(torch.randn(V, H) * 0.02, requires_grad=args.grads == "all")
    lm_head = embed if cfg["tie_word_embeddings"] else mat(V, H, False)
    final_norm = norm(H)
    layers = []
    for _ in range(L):
        layers.append(dict(attn_norm=norm(H), wq=mat(hq * D, H, True), wk=mat(hkv * D, H, False),
                           wv=mat(hkv * D, H, False), q_norm=norm(D), k_norm=norm(D),
                           wo=mat(H, hq * D, True), mlp_norm=norm(H), wg=mat(Fd, H, True),
                           wu=mat(Fd, H, True), wd=mat(H, Fd, True)))

    inv_freq = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, D, 2, dtype=torch.float64) / D))
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv_freq[None, :]
    cos = torch.cat([ang.cos(), ang.cos()], -1).float()[None]  # [1, T, D]
    sin = torch.cat([ang.sin(), ang.sin()], -1).float()[None]
    mask = torch.full((T, T), float("-inf")).triu(1)
    scale = 1.0 / math.sqrt(D)

    def rms(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w

    def rot_half(x):
        return torch.cat([-x[..., D // 2:], x[..., :D // 2]], -1)

    # Loss weights: position t predicts token t+1; weight 0 where t+1 < T/4, else 1/n.
    prompt = T // 4
    w = torch.tensor([0.0 if t + 1 < prompt else 1.0 for t in range(T - 1)])
    n_pred = int((w > 0).sum())
    w = w / n_pred
    first = 0 if args.full_logits else int((w > 0).nonzero()[0])

    def loss_fn(ids):
        x = F.embedding(ids, embed)  # [T, H]
        for p in layers:
            h = rms(x, p["attn_norm"])
            q = rms(F.linear(h, p["wq"]).view(T, hq, D), p["q_norm"]).transpose(0, 1)
            k = rms(F.linear(h, p["wk"]).view(T, hkv, D), p["k_norm"]).transpose(0, 1)
            v = F.linear(h, p["wv"]).view(T, hkv, D).transpose(0, 1)
            q = q * cos + rot_half(q) * sin
            k = k * cos + rot_half(k) * sin
            k = k.repeat_interleave(group, 0)
            v = v.repeat_interleave(group, 0)
            s = torch.baddbmm(mask[None], q, k.transpose(1, 2), alpha=scale)  # [hq, T, T]
            a = torch.bmm(torch.softmax(s, -1), v).transpose(0, 1).reshape(T, hq * D)
            x = x + F.linear(a, p["wo"])
            h = rms(x, p["mlp_norm"])
            x = x + F.linear(F.silu(F.linear(h, p["wg"])) * F.linear(h, p["wu"]), p["wd"])
        h = rms(x, final_norm)[first:T - 1]
        logits = F.linear(h, lm_head)
        nll = F.cross_entropy(logits, ids[first + 1:], reduction="none")
        return (nll * w[first:]).sum()

    g = torch.Generator().manual_seed(7)
    seqs = [torch.randint(0, V, (T,), generator=g) for _ in range(args.samples)]
    params = [t for p in layers for t in p.values()] + [embed, final_norm]
    if lm_head is not embed:
        params.append(lm_head)
    trainable = [t for t in params if t.requires_grad]

    def fwd_bwd(ids):
        loss = loss_fn(ids)
        loss.backward()
        return float(loss)

    def fwd(ids):
        with torch.no_grad():
            return float(loss_fn(ids))

    fwd_bwd(seqs[0])  # warm-up (allocator, thread pools)
    fwd(seqs[0])
    for t in trainable:
        t.grad = None

    def timed(fn):
        c0, t0 = time.process_time(), time.perf_counter()
        losses = [fn(s) for s in seqs]
        return time.perf_counter() - t0, time.process_time() - c0, losses

    secs_fb, cpu_fb, losses = timed(fwd_bwd)
    rss_fb = peak_rss_mib()
    secs_f, cpu_f, _ = timed(fwd)
    tokens = args.samples * T
    r = dict(bench="backward-torch", config=args.config, torch=torch.__version__, seq=T,
             samples=args.samples, threads=threads, grads=args.grads, full_logits=args.full_logits,
             loss_weighted_positions=n_pred, mean_loss=sum(losses) / len(losses),
             fwd_bwd_seconds=secs_fb, fwd_bwd_cpu_seconds=cpu_fb, fwd_bwd_tokens_per_s=tokens / secs_fb,
             fwd_seconds=secs_f, fwd_cpu_seconds=cpu_f, fwd_tokens_per_s=tokens / secs_f,
             ratio_fwd_bwd_over_fwd=secs_fb / secs_f, peak_rss_mib=rss_fb)
    print(f"torch {torch.__version__} fwd+bwd: {args.config}, {args.samples} x {T} tokens, "
          f"{threads} threads, grads={args.grads}")
    print(f"  fwd+bwd {tokens / secs_fb:8.1f} tokens/s ({secs_fb:.2f} s, cpu {cpu_fb:.2f} s)")
    print(f"  fwd     {tokens / secs_f:8.1f} tokens/s ({secs_f:.2f} s, cpu {cpu_f:.2f} s)"
          f"  fwd+bwd / fwd = {secs_fb / secs_f:.2f}x")
    print(f"  peak RSS {rss_fb:.0f} MiB")
    print(json.dumps(r))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(r, f, indent=2)


if __name__ == "__main__":
    main()
