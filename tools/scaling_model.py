#!/usr/bin/env python3
"""Performance model of a RESP run of Qwen3-8B / Qwen3-32B on 8-64 GPUs (tp=8 per node x dp=N
nodes), the one docs/scaling.md tabulates. Every input is printed with the table; change them
with flags. Costs per token come from what the engine measures (docs/performance.md: forward at
95 % of the GEMM rate, forward+backward = 2.5-2.9x forward) scaled to GPU rates, and the bytes
per collective from the formulas that tools/parallel_bench.py checks against the counters.

  tools/scaling_model.py [--model 8b|32b] [--gpus 8,16,32,64] [--mfu 0.5] ...
Standard library only.
"""
import argparse
import math

MODELS = {  # hidden, layers, q heads, kv heads, head_dim, intermediate, vocab
    "8b": dict(H=4096, L=36, hq=32, hkv=8, D=128, F=12288, V=151936),
    "32b": dict(H=5120, L=64, hq=64, hkv=8, D=128, F=25600, V=151936),
}


def model_run(m, gpus, a):
    H, L, hq, hkv, D, F, V = (m[k] for k in ("H", "L", "hq", "hkv", "D", "F", "V"))
    T = a.tp
    N = gpus // T  # data-parallel replicas = nodes
    p_layer = 2 * H * hq * D + 2 * H * hkv * D + 3 * H * F
    p_mat = L * p_layer + V * H  # matmul weights incl. lm_head
    # --- importance (forward + backward over the calibration traces), per RESP iteration -----
    tokens = a.traces * a.trace_len
    attn = 4 * L * hq * D * (a.trace_len / 2)  # QK^T and AV, causal: half the context on average
    flop_tok = a.bwd_ratio * (2 * p_mat + attn)
    rate = T * a.peak_tflops * 1e12 * a.mfu  # one replica
    t_compute = tokens / N * flop_tok / rate
    # TP: 2 all-reduces forward + 2 backward per layer of [tokens, H] (bf16); ring: 2(T-1)/T.
    tp_bytes_tok = 4 * L * H * a.act_bytes
    t_tp = tokens / N * tp_bytes_tok * 2 * (T - 1) / T / (a.nvlink_gbs * 1e9)
    t_tp += a.traces / N * 4 * L * a.latency_us * 1e-6  # one all-reduce per layer and sequence
    # DP: fp32 summed gradients of this rank's prunable weights (q, o, gate, up, down), once.
    dp_bytes = L * (2 * hq * D * H + 3 * F * H) / T * 4
    t_dp = dp_bytes * 2 * (N - 1) / N / (a.ib_gbs * 1e9) if N > 1 else 0.0
    imp = t_compute + t_tp + t_dp
    # --- generation (one regeneration of all traces) -------------------------------------------
    per_replica = math.ceil(a.traces / N)
    rows = min(a.slots, per_replica)
    waves = math.ceil(per_replica / a.slots)
    steps = waves * a.new_tokens  # continuous batching: refills keep `rows` busy
    w_bytes = p_mat * 2 / T  # bf16 weights read once per step per GPU
    ctx = a.prompt_len + a.new_tokens / 2
    kv_bytes = rows * ctx * L * hkv * D * 2 * 2 / T
    t_mem = (w_bytes + kv_bytes) / (a.hbm_tbs * 1e12)
    t_flop = rows * 2 * p_mat / T / (a.peak_tflops * 1e12 * a.mfu_decode)
    t_ar = 2 * L * a.latency_us * 1e-6  # [rows, H] messages: latency-bound
    step = max(t_mem, t_flop) + t_ar
    gen = steps * step
    return dict(gpus=gpus, dp=N, t_compute=t_compute, t_tp=t_tp, t_dp=t_dp, imp=imp,
                dp_gb=dp_bytes / 1e9, tp_mb_tok=tp_bytes_tok / 1e6, rows=rows, steps=steps,
                step_ms=step * 1e3, gen=gen,
                run=a.iterations * imp + a.regenerations * gen)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=sorted(MODELS), nargs="+", default=["8b", "32b"])
    ap.add_argument("--gpus", default="8,16,32,64")
    ap.add_argument("--tp", type=int, default=8)
    ap.add_argument("--traces", type=int, default=500, help="calibration traces (RESP: 500)")
    ap.add_argument("--trace-len", type=int, default=2100, help="tokens per trace")
    ap.add_argument("--prompt-len", type=int, default=150)
    ap.add_argument("--new-tokens", type=int, default=2048, help="decode steps per trace")
    ap.add_argument("--slots", type=int, default=128, help="sequences decoded together per replica")
    ap.add_argument("--iterations", type=int, default=112)
    ap.add_argument("--regenerations", type=int, default=6, help="dense traces + 5 milestones")
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="bf16 dense, H100/H200 SXM")
    ap.add_argument("--mfu", type=float, default=0.5, help="achieved fraction, fwd+bwd GEMMs")
    ap.add_argument("--mfu-decode", type=float, default=0.3)
    ap.add_argument("--bwd-ratio", type=float, default=2.7,
                    help="fwd+bwd / fwd time (measured 2.5-2.9, docs/performance.md)")
    ap.add_argument("--hbm-tbs", type=float, default=4.8, help="H200 4.8, H100 3.35 TB/s")
    ap.add_argument("--nvlink-gbs", type=float, default=450.0, help="per direction per GPU")
    ap.add_argument("--ib-gbs", type=float, default=50.0, help="400 Gb/s NIC per GPU")
    ap.add_argument("--latency-us", type=float, default=15.0, help="one NCCL all-reduce, 8 GPUs")
    ap.add_argument("--act-bytes", type=int, default=2, help="bf16 activations")
    a = ap.parse_args()
    gpus = [int(g) for g in a.gpus.split(",")]
    skip = {"model", "gpus"}
    print("assumptions: " + ", ".join(f"{k}={v}" for k, v in vars(a).items() if k not in skip))
    for name in a.model:
        rows = [model_run(MODELS[name], g, a) for g in gpus]
        base = rows[0]
        print(f"\nQwen3-{name.upper()}: per RESP iteration (importance) and per regeneration")
        print(f"{'GPUs':>5}{'dp':>4}{'compute_s':>10}{'TP_s':>8}{'DP_s':>7}{'iter_s':>8}"
              f"{'eff':>6}{'gen_rows':>9}{'steps':>7}{'step_ms':>8}{'gen_s':>8}{'eff':>6}"
              f"{'run_h':>7}")
        for r in rows:
            k = r["gpus"] / base["gpus"]
            print(f"{r['gpus']:>5}{r['dp']:>4}{r['t_compute']:>10.2f}{r['t_tp']:>8.2f}"
                  f"{r['t_dp']:>7.2f}{r['imp']:>8.2f}{base['imp'] / r['imp'] / k:>6.2f}"
                  f"{r['rows']:>9}{r['steps']:>7}{r['step_ms']:>8.2f}{r['gen']:>8.1f}"
                  f"{base['gen'] / r['gen'] / k:>6.2f}{r['run'] / 3600:>7.2f}")
        print(f"  TP payload {rows[0]['tp_mb_tok']:.2f} MB/token; DP gradient payload "
              f"{rows[0]['dp_gb']:.2f} GB per rank per iteration")


if __name__ == "__main__":
    main()
