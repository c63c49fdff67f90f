#!/usr/bin/env python3
"""Forward+backward (taylor importance) and generation at 1 and 2 ranks: speed-up, parallel
efficiency and bytes communicated per iteration (issue 6's benchmark).

Runs the same workload with `resp importance` and `resp generate` under mpiexec at each layout
(default: 1 rank; tp=2; dp=2), best of --repeats runs, and reads
  - the compute time each command logs (start-up and model loading excluded), and
  - the per-rank communication counters that resp writes when RESP_COMM_STATS is set
    (src/comm/checked_communicator.h: payload bytes per collective type and time inside them).
It also prints the bytes the formulas of docs/parallelism.md predict, so the two can be compared.

The model is a random Qwen3 (sizes from the flags) written here with the demo model's tokenizer,
so nothing needs downloading. Python 3 standard library only.

  tools/parallel_bench.py --resp build/resp --out /tmp/pbench [--json results.json]
"""
import argparse
import array
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "tests" / "fixtures" / "models" / "qwen3-tiny-demo"

MPI_ENV = {
    "OMPI_ALLOW_RUN_AS_ROOT": "1",
    "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
    "OMPI_MCA_pml": "ob1",
    "OMPI_MCA_btl": "self,vader",
    "OMPI_MCA_rmaps_base_oversubscribe": "1",
    "OMP_NUM_THREADS": "1",
}


def write_model(d: Path, hidden, layers, heads, kv_heads, ffn, seed=1):
    """A random Qwen3 checkpoint: config.json, model.safetensors (f32) and the demo tokenizer."""
    d.mkdir(parents=True, exist_ok=True)
    cfg = json.loads((DEMO / "config.json").read_text())
    head_dim = hidden // heads
    cfg.update(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
               num_key_value_heads=kv_heads, intermediate_size=ffn, head_dim=head_dim,
               max_window_layers=layers, max_position_embeddings=4096)
    vocab = cfg["vocab_size"]
    (d / "config.json").write_text(json.dumps(cfg, indent=2))
    for f in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        shutil.copy(DEMO / f, d / f)
    shapes = {"model.embed_tokens.weight": [vocab, hidden], "model.norm.weight": [hidden],
              "lm_head.weight": [vocab, hidden]}
    for i in range(layers):
        p = f"model.layers.{i}."
        shapes.update({
            p + "input_layernorm.weight": [hidden], p + "post_attention_layernorm.weight": [hidden],
            p + "self_attn.q_proj.weight": [heads * head_dim, hidden],
            p + "self_attn.k_proj.weight": [kv_heads * head_dim, hidden],
            p + "self_attn.v_proj.weight": [kv_heads * head_dim, hidden],
            p + "self_attn.o_proj.weight": [hidden, heads * head_dim],
            p + "self_attn.q_norm.weight": [head_dim], p + "self_attn.k_norm.weight": [head_dim],
            p + "mlp.gate_proj.weight": [ffn, hidden], p + "mlp.up_proj.weight": [ffn, hidden],
            p + "mlp.down_proj.weight": [hidden, ffn]})
    # Values: slices of one random pool (fast in pure Python); norms are 1.
    rng = random.Random(seed)
    pool = array.array("f", (rng.gauss(0.0, 1.0) for _ in range(1 << 18)))
    header, blobs, off = {}, [], 0
    for name, shape in shapes.items():
        n = 1
        for s in shape:
            n *= s
        if name.endswith("norm.weight"):
            vals = array.array("f", [1.0]) * n
        else:
            scale = 1.0 / (shape[-1] ** 0.5)
            vals = array.array("f")
            start = rng.randrange(len(pool))
            while len(vals) < n:
                take = min(n - len(vals), len(pool) - start)
                vals.extend(pool[start:start + take])
                start = 0
            vals = array.array("f", (v * scale for v in vals))
        raw = vals.tobytes()
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(d / "model.safetensors", "wb") as f:
        f.write(len(h).to_bytes(8, "little"))
        f.write(h)
        for b in blobs:
            f.write(b)
    return cfg


def write_inputs(d: Path, vocab, samples, prompt_len, output_len, prompts, seed=2):
    rng = random.Random(seed)
    with open(d / "calibration.jsonl", "w") as f:
        for i in range(samples):
            f.write(json.dumps({
                "id": f"s{i}",
                "prompt_tokens": [rng.randrange(vocab - 8) for _ in range(prompt_len)],
                "output_tokens": [rng.randrange(vocab - 8) for _ in range(output_len)]}) + "\n")
    words = ["apples", "has", "Tom", "three", "more", "than", "twice", "how", "many", "sum"]
    with open(d / "prompts.jsonl", "w") as f:
        for i in range(prompts):
            text = " ".join(rng.choice(words) for _ in range(12))
            f.write(json.dumps({"id": f"p{i}", "prompt": text}) + "\n")


def run(cmd, env, stats_dir):
    if stats_dir.exists():
        shutil.rmtree(stats_dir)
    full_env = dict(os.environ, **MPI_ENV, **env, RESP_COMM_STATS=str(stats_dir))
    t0 = time.monotonic()
    p = subprocess.run(cmd, env=full_env, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        sys.exit(f"parallel_bench: {' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    stats = [json.loads(f.read_text()) for f in sorted(stats_dir.glob("comm_stats.rank*.json"))]
    return p.stderr, wall, stats


def parse_seconds(kind, log):
    pat = {"importance": r"scored \d+ samples .* in ([0-9.eE+-]+) s",
           "generate": r"generated \d+ tokens for \d+ prompts in ([0-9.eE+-]+) s"}[kind]
    m = re.findall(pat, log)
    if not m:
        sys.exit(f"parallel_bench: no timing line in the {kind} log:\n{log[-2000:]}")
    return float(m[0])


def predicted_bytes(kind, cfg, ranks, tp, work):
    """Payload bytes per rank that docs/parallelism.md's formulas give (f32 = 4 bytes)."""
    H, L = cfg["hidden_size"], cfg["num_hidden_layers"]
    heads, ffn, D = cfg["num_attention_heads"], cfg["intermediate_size"], cfg["head_dim"]
    kv = cfg["num_key_value_heads"]
    dp = ranks // tp
    b = 0
    if kind == "importance":
        if tp > 1:
            # per sample on this replica: 2 forward + 2 backward all-reduces of [T, H] per layer,
            # then the layer scores (heads + channels, f64).
            b += 4 * L * int(work["tokens_per_replica"]) * H * 4 + L * (heads + ffn) * 8
        if dp > 1:
            # Once per pass: the summed gradients of this rank's share of the prunable matrices
            # (q rows and o columns of its heads, gate/up/down of its channels; f32), then the
            # 3 counters and the per-layer sums of scorer.cpp (2 per head, 4 per channel and one
            # per attention column; f64).
            hq, F = heads // tp, ffn // tp
            b += L * (2 * hq * D * H + 3 * F * H) * 4
            b += 3 * 8 + L * (2 * hq + 4 * F + hq * D) * 8
    if kind == "generate" and tp > 1:
        # Every token row a forward pass processes (prompt tokens in prefill, then each output
        # token but the last fed back) goes through 2 all-reduces of H floats per layer; each
        # sampled token is broadcast from TP rank 0 (int32). Replicas split the prompts.
        b += 2 * L * H * 4 * work["rows_per_replica"] + 4 * work["sampled_per_replica"]
    return b


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--resp", default=str(ROOT / "build" / "resp"))
    ap.add_argument("--out", default=None, help="work directory (default: a temporary one)")
    ap.add_argument("--mpiexec", default="mpiexec")
    ap.add_argument("--layouts", default="1x1,2x2,2x1",
                    help="ranks x tp, comma separated (default 1x1,2x2,2x1: one rank, tp=2, dp=2)")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--ffn", type=int, default=768)
    ap.add_argument("--samples", type=int, default=16, help="calibration sequences (fwd+bwd)")
    ap.add_argument("--prompt-len", type=int, default=48)
    ap.add_argument("--output-len", type=int, default=80)
    ap.add_argument("--prompts", type=int, default=16, help="prompts to generate for")
    ap.add_argument("--new-tokens", type=int, default=48)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3, help="best of N runs per point")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 unless measured bytes equal the formulas (for ctest)")
    a = ap.parse_args()

    work = Path(a.out) if a.out else Path(tempfile.mkdtemp(prefix="resp-pbench-"))
    work.mkdir(parents=True, exist_ok=True)
    model = work / "model"
    cfg = write_model(model, a.hidden, a.layers, a.heads, a.kv_heads, a.ffn)
    write_inputs(work, cfg["vocab_size"], a.samples, a.prompt_len, a.output_len, a.prompts)
    layouts = [tuple(int(x) for x in s.split("x")) for s in a.layouts.split(",")]

    results = []
    for kind in ("importance", "generate"):
        for ranks, tp in layouts:
            base = [a.mpiexec, "-n", str(ranks), a.resp]
            if kind == "importance":
                cmd = base + ["importance", "--model", str(model), "--traces",
                              str(work / "calibration.jsonl"), "--criterion", "taylor",
                              "--out", str(work / "scores.h5")]
            else:
                cmd = base + ["generate", "--model", str(model), "--prompts",
                              str(work / "prompts.jsonl"), "--out", str(work / "gen.jsonl"),
                              "--no-chat", "--temperature", "0", "--quiet",
                              "--max-new-tokens", str(a.new_tokens),
                              "--batch-size", str(a.batch_size)]
            cmd += ["--tp", str(tp), "--threads", "1"]
            best = None
            for _ in range(a.repeats):
                log, wall, stats = run(cmd, {}, work / "stats")
                secs = parse_seconds(kind, log)
                if best is None or secs < best["seconds"]:
                    best = {"seconds": secs, "wall": wall, "stats": stats}
            st = best["stats"]
            # Rank 0's bytes (what the formulas describe: its replica's share of the work).
            r0 = next((s for s in st if s["rank"] == 0), None)
            bytes0 = r0["total_bytes"] if r0 else 0
            comm_s = max(s["total_seconds"] for s in st) if st else 0.0
            if kind == "importance":
                iters = a.samples  # one iteration = one calibration sequence's fwd+bwd
                tokens = a.samples * (a.prompt_len + a.output_len)
            else:
                outs = [json.loads(l) for l in (work / "gen.jsonl").read_text().splitlines()]
                tokens = sum(o["n_output_tokens"] for o in outs)
                iters = max(len(o["output_tokens"]) for o in outs)  # decode steps (batch 1 view)
            dp = ranks // tp
            w = {"tokens_per_replica": a.samples * (a.prompt_len + a.output_len) / dp}
            if kind == "generate":
                # Rank 0's replica holds prompts 0, dp, 2dp, ... (assignment by index).
                mine = outs[::dp]
                w["rows_per_replica"] = sum(o["n_prompt_tokens"] + o["n_output_tokens"] - 1
                                            for o in mine)
                w["sampled_per_replica"] = sum(o["n_output_tokens"] for o in mine)
            results.append({
                "workload": kind, "ranks": ranks, "tp": tp, "dp": dp,
                "seconds": best["seconds"], "wall_seconds": best["wall"],
                "tokens": tokens, "tokens_per_s": tokens / best["seconds"],
                "bytes_per_rank": bytes0,
                "comm_seconds": comm_s,
                "bytes_per_iteration": bytes0 / iters,
                "predicted_bytes_per_rank": predicted_bytes(kind, cfg, ranks, tp, w),
                "per_collective": r0["communicators"] if r0 else {},
            })

    # Speed-up and efficiency against the 1-rank run of the same workload.
    for r in results:
        one = next((x for x in results if x["workload"] == r["workload"] and x["ranks"] == 1), None)
        r["speedup"] = one["seconds"] / r["seconds"] if one else None
        r["efficiency"] = r["speedup"] / r["ranks"] if one else None

    print(f"model: hidden {a.hidden}, {a.layers} layers, {a.heads} heads ({a.kv_heads} kv), "
          f"ffn {a.ffn}, vocab {cfg['vocab_size']}; {a.samples} x {a.prompt_len + a.output_len} "
          f"tokens fwd+bwd; {a.prompts} prompts x {a.new_tokens} new tokens; best of {a.repeats}")
    print(f"{'workload':<11}{'ranks':>6}{'tp':>4}{'dp':>4}{'seconds':>9}{'tok/s':>9}"
          f"{'speedup':>9}{'eff':>6}{'comm_s':>8}{'bytes/rank':>12}{'predicted':>11}"
          f"{'bytes/iter':>12}")
    for r in results:
        print(f"{r['workload']:<11}{r['ranks']:>6}{r['tp']:>4}{r['dp']:>4}{r['seconds']:>9.3f}"
              f"{r['tokens_per_s']:>9.0f}{r['speedup']:>9.2f}{r['efficiency']:>6.2f}"
              f"{r['comm_seconds']:>8.3f}{r['bytes_per_rank']:>12d}"
              f"{r['predicted_bytes_per_rank'] if r['tp'] > 1 or r['workload'] == 'importance' else '-':>11}"
              f"{r['bytes_per_iteration']:>12.0f}")
    if a.check:
        bad = [r for r in results if (r["workload"] == "importance" or r["tp"] > 1)
               and r["bytes_per_rank"] != r["predicted_bytes_per_rank"]]
        for r in bad:
            print(f"parallel_bench --check: {r['workload']} {r['ranks']}x{r['tp']}: measured "
                  f"{r['bytes_per_rank']} bytes, formula {r['predicted_bytes_per_rank']}",
                  file=sys.stderr)
        if bad or any(r["ranks"] > 1 and r["bytes_per_rank"] == 0 for r in results):
            sys.exit(1)
        print("parallel_bench --check: measured bytes equal the formulas")
    if a.json:
        Path(a.json).write_text(json.dumps({"config": vars(a), "results": results}, indent=1))
    if not a.out:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
