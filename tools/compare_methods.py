#!/usr/bin/env python3
"""The paper's comparison on the embedded model, with one command.

    python3 tools/compare_methods.py [--seeds 1 2 3] [--sparsities 0.2 0.3 0.4 0.5]
        [--limit 200] [--jobs 2] [--work runs/compare] [--out docs]

For every method and seed it runs `resp prune` (configs/default.yaml plus the method's
overrides and the seed), exports the checkpoints closest to each measured sparsity
(`resp export --sparsity S --format hetero`), and evaluates them greedily on the held-out split
with `resp eval` (0-shot chat, thinking on). The dense model is evaluated once (greedy decoding
does not depend on the seed). Writes:

    <work>/results.json        every measurement
    <out>/results.md           mean +- std table (accuracy strict / flexible, mean generated
                               tokens, truncation rate) and the measured sparsities
    <out>/results.png          accuracy vs measured sparsity, one line per method

Steps whose outputs exist are skipped, so an interrupted comparison continues where it stopped.
Methods (resp-method.md, "Baselines used in the paper"):
    resp            self-generated traces, regenerated at the milestones (the defaults)
    resp-no-regen   the dense model's traces throughout
    gisp            the same Taylor pruner calibrated on gold rationales, no regeneration
    wanda-sp        |W| * ||X|| on gold rationales, per-layer uniform ratio, no regeneration
"""

import argparse
import concurrent.futures as cf
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

METHODS = {
    "resp": [],
    "resp-no-regen": ["regeneration.milestones=[]"],
    "gisp": ["calibration.source=gold", "regeneration.milestones=[]"],
    "wanda-sp": ["importance.criterion=wanda-sp", "importance.ranking=per-layer",
                 "calibration.source=gold", "regeneration.milestones=[]"],
}


def run(cmd, log):
    with open(log, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    if r.returncode != 0:
        raise SystemExit(f"compare_methods: failed ({r.returncode}): {' '.join(cmd)}; see {log}")


def evaluate(args, model, out_json, log):
    if not out_json.exists():
        run([args.resp, "eval", "--model", str(model), "--task", "gsm8k", "--data", args.test,
             "--shots", "0", "--chat", "--thinking", "on", "--temperature", "0",
             "--max-new-tokens", str(args.max_new_tokens), "--limit", str(args.limit),
             "--threads", str(args.threads), "--quiet", "--out", str(out_json)], log)
    res = json.loads(out_json.read_text())
    s = res.get("summary", res)
    return {"strict": s["accuracy"]["strict"], "flexible": s["accuracy"]["flexible"],
            "mean_tokens": s["generated_tokens"]["mean"], "truncation": s["truncation_rate"]}


def export(args, run_dir, sp, model, log):
    """Exports the checkpoint closest to sparsity `sp`; returns its measured sparsity (kept
    next to the model, since resp export prints it once)."""
    note = Path(str(model) + ".sparsity")
    if not model.exists() or not note.exists():
        if model.exists():
            shutil.rmtree(model)  # exported before its note was written: redo both
        cmd = [args.resp, "export", "--run", str(run_dir), "--sparsity", str(sp), "--format",
               "hetero", "--out", str(model)]
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        with open(log, "a") as f:
            f.write("$ " + " ".join(cmd) + "\n" + r.stdout + r.stderr)
        if r.returncode != 0:
            raise SystemExit(f"compare_methods: export failed: {r.stderr.strip()}")
        m = re.search(r"measured sparsity ([0-9.]+)", r.stdout)
        note.write_text(m.group(1) if m else "nan")
    v = float(note.read_text())
    return None if v != v else v


def method_seed(args, method, seed):
    """One prune run, then export + eval at every sparsity. Returns a list of rows."""
    work = Path(args.work) / method / f"seed{seed}"
    work.mkdir(parents=True, exist_ok=True)
    log = work / "log.txt"
    run_dir = work / "run"
    sets = METHODS[method] + [f"generation.seed={seed}", f"data.shuffle_seed={seed}"] + args.set
    cmd = [args.resp, "prune", "--config", args.config, "--out", str(run_dir), "--resume",
           "--threads", str(args.threads)]
    for s in sets:
        cmd += ["--set", s]
    run(cmd, log)
    rows = []
    for sp in args.sparsities:
        model = work / f"model-{sp:.2f}"
        measured = export(args, run_dir, sp, model, log)
        r = evaluate(args, model, work / f"eval-{sp:.2f}.json", log)
        r.update(method=method, seed=seed, target=sp, measured=measured)
        rows.append(r)
    return rows


def mean_std(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None, None
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def fmt(xs, pct=True, digits=1):
    m, s = mean_std(xs)
    if m is None:
        return "n/a"
    k = 100.0 if pct else 1.0
    return f"{m * k:.{digits}f} ± {s * k:.{digits}f}"


def write_report(args, dense, rows):
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# Results on the embedded model", "",
             f"Produced by `python3 tools/compare_methods.py` ({len(args.seeds)} seeds: "
             f"{' '.join(map(str, args.seeds))}; held-out `{args.test}`, first {args.limit} "
             f"problems, greedy decoding, 0-shot chat with thinking; pruning config "
             f"`{args.config}`{' with ' + ', '.join(args.set) if args.set else ''}).",
             "Mean ± standard deviation over seeds (the seed sets the calibration prompts and "
             "the sampling of RESP's traces). Sparsity is the measured sparsity of the exported "
             "checkpoint (resp-method.md).", "",
             f"Dense model: strict {dense['strict'] * 100:.1f}%, flexible "
             f"{dense['flexible'] * 100:.1f}%, mean {dense['mean_tokens']:.1f} generated tokens, "
             f"truncated {dense['truncation'] * 100:.1f}%.", "",
             "| method | target | measured sparsity | accuracy strict (%) | accuracy flexible (%) "
             "| mean generated tokens | truncated (%) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for method in METHODS:
        for sp in args.sparsities:
            sel = [r for r in rows if r["method"] == method and r["target"] == sp]
            if not sel:
                continue
            lines.append(
                f"| {method} | {sp:.1f} | {fmt([r['measured'] for r in sel], pct=False, digits=3)}"
                f" | {fmt([r['strict'] for r in sel])} | {fmt([r['flexible'] for r in sel])}"
                f" | {fmt([r['mean_tokens'] for r in sel], pct=False)}"
                f" | {fmt([r['truncation'] for r in sel])} |")
    short = sorted({r["method"] for r in rows
                    if r["measured"] is not None and abs(r["measured"] - r["target"]) > 0.05})
    if short:
        lines += ["", "Rows where the measured sparsity is far from the target: the run never "
                  "reached it and the closest checkpoint is shown (" + ", ".join(short) + ")."]
    best = []
    for sp in args.sparsities:
        scored = [(mean_std([r["flexible"] for r in rows
                             if r["method"] == m and r["target"] == sp])[0], m) for m in METHODS]
        scored = [x for x in scored if x[0] is not None]
        if scored:
            acc = max(a for a, _ in scored)
            tied = [m for a, m in scored if abs(a - acc) < 1e-12]
            best.append(f"{sp:.1f}: {' = '.join(tied)} ({acc * 100:.1f}%)")
    if best:
        lines += ["", "Best mean flexible accuracy per target sparsity — " + "; ".join(best) + "."]
    lines += ["", "![accuracy vs sparsity](results.png)", ""]
    (out / "results.md").write_text("\n".join(lines))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("compare_methods: matplotlib missing (apt-get install python3-matplotlib); "
              "no plot", file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for method in METHODS:
        xs, ys, es = [], [], []
        for sp in args.sparsities:
            sel = [r for r in rows if r["method"] == method and r["target"] == sp]
            if not sel:
                continue
            mx, _ = mean_std([r["measured"] for r in sel])
            my, sy = mean_std([r["flexible"] for r in sel])
            xs.append(mx if mx is not None else sp)
            ys.append(my * 100)
            es.append(sy * 100)
        if xs:
            ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=method)
    ax.axhline(dense["flexible"] * 100, color="gray", linestyle="--", label="dense")
    ax.set_xlabel("measured sparsity")
    ax.set_ylabel("held-out accuracy, flexible (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("Structured pruning of the embedded model")
    fig.tight_layout()
    fig.savefig(out / "results.png", dpi=120)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resp", default=str(ROOT / "build/resp"))
    ap.add_argument("--config", default="configs/default.yaml")
    ap.add_argument("--set", action="append", default=[],
                    help="extra override for every prune run (section.key=value)")
    ap.add_argument("--model", default="models/resp-math-tiny")
    ap.add_argument("--test", default="data/synthetic-math/test.jsonl")
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--max-new-tokens", type=int, default=160)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--sparsities", type=float, nargs="+", default=[0.2, 0.3, 0.4, 0.5])
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--jobs", type=int, default=2, help="prune runs at once")
    ap.add_argument("--threads", type=int, default=1, help="threads per resp process")
    ap.add_argument("--work", default="runs/compare")
    ap.add_argument("--out", default="docs")
    args = ap.parse_args()
    Path(args.work).mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    dense = evaluate(args, args.model, Path(args.work) / "dense-eval.json",
                     Path(args.work) / "dense-log.txt")
    tasks = [(m, s) for m in args.methods for s in args.seeds]
    rows = []
    with cf.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for fut in cf.as_completed([pool.submit(method_seed, args, m, s) for m, s in tasks]):
            rows.extend(fut.result())
    (Path(args.work) / "results.json").write_text(
        json.dumps({"dense": dense, "rows": rows}, indent=1) + "\n")
    write_report(args, dense, rows)
    print(f"compare_methods: wrote {args.out}/results.md and results.png")


if __name__ == "__main__":
    main()
