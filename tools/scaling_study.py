#!/usr/bin/env python3
"""Scaling study of `resp prune`: a fixed pruning workload (a few iterations, each with
importance = forward+backward over the calibration traces, and generation of the traces at the
start and after a milestone) at several layouts, per-phase timings from the run directory's
timings.jsonl (src/driver/prune_run.cpp), a CSV and PNG plots of strong and weak scaling and
parallel efficiency. docs/scaling.md explains the numbers.

Locally (mpiexec, every layout in turn, then the CSV and plots):
  tools/scaling_study.py --resp build/resp --out runs/scaling --layouts 1x1,2x1,2x2,4x1,4x2

On a cluster, one Slurm array task per layout (jobs/scaling-array.sbatch), then once:
  tools/scaling_study.py --out DIR --task-index $SLURM_ARRAY_TASK_ID --launcher "srun --mpi=pmix"
  tools/scaling_study.py --out DIR --collect

Strong scaling: the same prompts at every layout (--prompts). Weak scaling: --prompts-per-replica
prompts per data-parallel replica, so the work per replica stays constant. Layouts are RANKSxTP.

Workload model: --model DIR (a Hugging Face directory with a tokenizer), "demo" (the embedded
qwen3-tiny-demo, 64 wide: latency-bound), or "small" (default: a random 256-wide, 4-layer Qwen3
written with tools/parallel_bench.py's generator, so compute is not negligible).
Standard library only; matplotlib (Debian's python3-matplotlib) for the plots.
"""
import argparse
import csv
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

PHASES = ["t_generate", "t_importance", "t_prune", "t_checkpoint", "t_load"]
COLUMNS = ["mode", "ranks", "tp", "dp", "prompts", "iterations", "generated_tokens",
           "importance_tokens", "t_total", "t_generate", "t_importance", "t_prune",
           "t_checkpoint", "t_load", "t_comm", "comm_bytes", "wall_s", "speedup", "efficiency"]
MPI_ENV = {
    "OMPI_ALLOW_RUN_AS_ROOT": "1",
    "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
    "OMPI_MCA_rmaps_base_oversubscribe": "1",
    "OMP_NUM_THREADS": "1",
}


def parse_layouts(s):
    out = []
    for part in s.split(","):
        ranks, tp = (int(x) for x in part.lower().split("x"))
        if ranks < 1 or tp < 1 or ranks % tp:
            sys.exit(f"scaling_study: layout {part}: tp must divide the rank count")
        out.append((ranks, tp))
    return out


def tasks(a):
    """Every (mode, ranks, tp) point of the study, in a fixed order (the array index)."""
    modes = ["strong", "weak"] if a.mode == "both" else [a.mode]
    return [(m, r, t) for m in modes for (r, t) in parse_layouts(a.layouts)]


def model_dir(a, out: Path):
    if a.model == "demo":
        return ROOT / "tests" / "fixtures" / "models" / "qwen3-tiny-demo"
    if a.model == "small":
        d = out / "model-small"
        if not (d / "model.safetensors").exists():
            import parallel_bench  # the random-model writer lives there
            tmp = out / f"model-small.tmp{os.getpid()}"  # array tasks may race: write, rename
            parallel_bench.write_model(tmp, hidden=256, layers=4, heads=8, kv_heads=4, ffn=768)
            try:
                tmp.rename(d)
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)  # another task won
        return d
    return Path(a.model)


def run_point(a, out: Path, mode, ranks, tp):
    dp = ranks // tp
    prompts = a.prompts if mode == "strong" else a.prompts_per_replica * dp
    run_dir = out / "runs" / f"{mode}-{ranks}x{tp}"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    sets = {
        "model": str(model_dir(a, out)),
        # Explicit, so the study does not change when configs/default.yaml does.
        "data.task": a.task,
        "data.prompts": a.prompts_file,
        "data.num_prompts": prompts,
        "generation.max_new_tokens": a.max_new_tokens,
        "generation.batch_size": a.batch_size,
        "schedule.iterations": a.iterations,
        "schedule.final_ratio": a.final_ratio,
        # Crossed after the first iteration: the workload regenerates once more, like RESP does.
        "regeneration.milestones": "[0.01]",
    }
    cmd = shlex.split(a.launcher) + ["-n", str(ranks)] + shlex.split(a.launcher_args)
    cmd += [a.resp, "prune", "--config", str(ROOT / "configs" / "default.yaml"), "--out",
            str(run_dir), "--tp", str(tp), "--threads", str(a.threads)]
    for k, v in sets.items():
        cmd += ["--set", f"{k}={v}"]
    env = dict(os.environ)
    if "mpiexec" in a.launcher or "mpirun" in a.launcher:
        for k, v in MPI_ENV.items():
            env.setdefault(k, v)
    env["OMP_NUM_THREADS"] = str(a.threads)
    t0 = time.monotonic()
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        sys.exit(f"scaling_study: {shlex.join(cmd)} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    lines = [json.loads(l) for l in (run_dir / "timings.jsonl").read_text().splitlines() if l]
    if len(lines) != a.iterations:
        sys.exit(f"scaling_study: {run_dir}/timings.jsonl has {len(lines)} iterations, "
                 f"expected {a.iterations}")
    row = {"mode": mode, "ranks": ranks, "tp": tp, "dp": dp, "prompts": prompts,
           "iterations": len(lines), "wall_s": wall,
           "generated_tokens": sum(l["generated_tokens"] for l in lines),
           "importance_tokens": sum(l["importance_tokens"] for l in lines),
           "t_total": sum(l["t_iteration"] for l in lines),
           "t_comm": sum(l["comm"]["total"]["seconds"] for l in lines),
           "comm_bytes": sum(l["comm"]["total"]["bytes"] for l in lines)}
    for ph in PHASES:
        row[ph] = sum(l[ph] for l in lines)
    row["iterations_detail"] = lines
    return row


def add_scaling(rows):
    """Speed-up = throughput (prompts per second of the whole workload) relative to 1 rank of
    the same mode; efficiency = speed-up / ranks. For strong scaling the work is fixed, so this
    is T1/TN; for weak scaling the prompts grow with dp, so it is (dp*T1/TN) -- tensor
    parallelism adds ranks without adding prompts, and pays for it here."""
    for r in rows:
        one = next((x for x in rows if x["mode"] == r["mode"] and x["ranks"] == 1), None)
        if not one or r["t_total"] <= 0:
            r["speedup"] = r["efficiency"] = ""
            continue
        r["speedup"] = (r["prompts"] / r["t_total"]) / (one["prompts"] / one["t_total"])
        r["efficiency"] = r["speedup"] / r["ranks"]


def write_csv(rows, path: Path):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{r[k]:.6g}" if isinstance(r[k], float) else r[k]) for k in COLUMNS})


def plot(rows, path: Path):
    try:
        import matplotlib
    except ImportError:
        debian = "/usr/bin/python3"
        if os.path.exists(debian) and os.path.realpath(sys.executable) != os.path.realpath(debian):
            # pyenv or a venv first on PATH: Debian's python3-matplotlib lives with /usr/bin/python3.
            return subprocess.call([debian, __file__, "--plot-only", str(path)]) == 0
        print("scaling_study: matplotlib not found (apt-get install python3-matplotlib); "
              "no plots", file=sys.stderr)
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    colors = {"t_generate": "tab:blue", "t_importance": "tab:orange", "t_prune": "tab:green",
              "t_checkpoint": "tab:red", "t_load": "tab:gray"}
    for ax, mode in zip(axes[:2], ["strong", "weak"]):
        pts = sorted((r for r in rows if r["mode"] == mode), key=lambda r: (r["ranks"], r["tp"]))
        if not pts:
            ax.set_visible(False)
            continue
        labels = [f"{r['ranks']} (tp{r['tp']})" for r in pts]
        bottom = [0.0] * len(pts)
        for ph in PHASES:
            vals = [r[ph] for r in pts]
            ax.bar(labels, vals, bottom=bottom, color=colors[ph], label=ph[2:])
            bottom = [b + v for b, v in zip(bottom, vals)]
        comm = [r["t_comm"] for r in pts]
        ax.plot(labels, comm, "k--o", label="in collectives")
        ax.set_title(f"{mode} scaling: time per phase (sum over iterations)")
        ax.set_xlabel("ranks (tensor-parallel size)")
        ax.set_ylabel("seconds")
        ax.legend(fontsize=8)
    ax = axes[2]
    for mode, style in (("strong", "o-"), ("weak", "s-")):
        for tp in sorted({r["tp"] for r in rows if r["mode"] == mode}):
            pts = sorted((r for r in rows if r["mode"] == mode and r["tp"] == tp
                          and r["efficiency"] != ""), key=lambda r: r["ranks"])
            if pts:
                ax.plot([r["ranks"] for r in pts], [r["efficiency"] for r in pts], style,
                        label=f"{mode}, tp={tp}")
    ax.axhline(1.0, color="gray", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set_title("parallel efficiency (vs 1 rank)")
    ax.set_xlabel("ranks")
    ax.set_ylabel("efficiency")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def collect(a, out: Path):
    rows = []
    for f in sorted((out / "results").glob("*.json")):
        rows.append(json.loads(f.read_text()))
    if not rows:
        sys.exit(f"scaling_study: no results in {out / 'results'}")
    rows.sort(key=lambda r: (r["mode"], r["ranks"], r["tp"]))
    add_scaling(rows)
    write_csv(rows, out / "scaling.csv")
    (out / "scaling.json").write_text(json.dumps(rows, indent=1))
    plotted = plot(rows, out / "scaling.png") if not a.no_plots else False
    print(f"{'mode':<7}{'ranks':>6}{'tp':>4}{'dp':>4}{'prompts':>8}{'total_s':>9}{'gen_s':>8}"
          f"{'imp_s':>8}{'comm_s':>8}{'MB':>8}{'speedup':>8}{'eff':>6}")
    for r in rows:
        sp = f"{r['speedup']:.2f}" if r["speedup"] != "" else "-"
        ef = f"{r['efficiency']:.2f}" if r["efficiency"] != "" else "-"
        print(f"{r['mode']:<7}{r['ranks']:>6}{r['tp']:>4}{r['dp']:>4}{r['prompts']:>8}"
              f"{r['t_total']:>9.3f}{r['t_generate']:>8.3f}{r['t_importance']:>8.3f}"
              f"{r['t_comm']:>8.3f}{r['comm_bytes'] / 1e6:>8.2f}{sp:>8}{ef:>6}")
    print(f"wrote {out / 'scaling.csv'}" + (f" and {out / 'scaling.png'}" if plotted else ""))
    return rows


def check(a, out: Path, rows):
    """--check: the CSV has every column and one row per point with positive times."""
    with open(out / "scaling.csv") as f:
        rd = csv.DictReader(f)
        got = list(rd)
        if rd.fieldnames != COLUMNS:
            sys.exit(f"scaling_study --check: columns {rd.fieldnames} != {COLUMNS}")
    want = {(m, r, t) for (m, r, t) in tasks(a)}
    have = {(g["mode"], int(g["ranks"]), int(g["tp"])) for g in got}
    if want != have:
        sys.exit(f"scaling_study --check: rows {sorted(have)} != {sorted(want)}")
    for g in got:
        if not float(g["t_total"]) > 0 or not float(g["t_importance"]) > 0:
            sys.exit(f"scaling_study --check: non-positive time in {g}")
        if int(g["ranks"]) > 1 and not int(g["comm_bytes"]) > 0:
            sys.exit(f"scaling_study --check: no communication counted at {g['ranks']} ranks")
        if int(g["generated_tokens"]) <= 0:
            sys.exit(f"scaling_study --check: nothing generated in {g}")
    # Determinism across layouts: strong-scaling runs prune the same model identically.
    strong = [r for r in rows if r["mode"] == "strong"]
    kept = {(r["ranks"], r["tp"]): json.dumps(
        [(l["importance_tokens"], l["generated_tokens"]) for l in r["iterations_detail"]])
        for r in strong}
    if len(set(kept.values())) > 1:
        sys.exit(f"scaling_study --check: work differs between layouts: {kept}")
    print("scaling_study --check: ok")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--resp", default=str(ROOT / "build" / "resp"))
    ap.add_argument("--out", default=str(ROOT / "runs" / "scaling"))
    ap.add_argument("--layouts", default="1x1,2x1,2x2,4x1,4x2", help="RANKSxTP, comma separated")
    ap.add_argument("--mode", choices=["strong", "weak", "both"], default="both")
    ap.add_argument("--model", default="small", help='"small", "demo" or a model directory')
    ap.add_argument("--prompts", type=int, default=16, help="strong scaling: prompts in total")
    ap.add_argument("--prompts-per-replica", type=int, default=8,
                    help="weak scaling: prompts per data-parallel replica")
    ap.add_argument("--task", default="gsm8k", help="calibration task (data.task)")
    ap.add_argument("--prompts-file", default="data/gsm8k/train.jsonl",
                    help="calibration prompts (data.prompts; relative to the repository)")
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--final-ratio", type=float, default=0.3)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1, help="CPU threads per rank")
    ap.add_argument("--launcher", default="mpiexec", help='e.g. "srun --mpi=pmix"')
    ap.add_argument("--launcher-args", default="",
                    help="extra launcher arguments (mpiexec: e.g. --oversubscribe)")
    ap.add_argument("--task-index", type=int, default=None,
                    help="run only this point of the study (Slurm array task), then stop")
    ap.add_argument("--collect", action="store_true", help="only build CSV/plots from results/")
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--check", action="store_true",
                    help="verify the CSV (columns, rows, positive times; for ctest)")
    ap.add_argument("--plot-only", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.plot_only:  # re-run of plot() under Debian's python3 (see plot())
        out = Path(a.plot_only)
        rows = json.loads(out.with_suffix(".json").read_text())
        sys.exit(0 if plot(rows, out) else 1)

    out = Path(a.out).resolve()
    (out / "results").mkdir(parents=True, exist_ok=True)
    if not a.collect:
        points = tasks(a)
        if a.task_index is not None:
            if not 0 <= a.task_index < len(points):
                sys.exit(f"scaling_study: --task-index {a.task_index} outside 0..{len(points) - 1}")
            points = [points[a.task_index]]
        else:
            for f in (out / "results").glob("*.json"):
                f.unlink()
        for mode, ranks, tp in points:
            row = run_point(a, out, mode, ranks, tp)
            (out / "results" / f"{mode}-{ranks}x{tp}.json").write_text(json.dumps(row))
            print(f"  {mode} {ranks}x{tp}: {row['t_total']:.3f} s "
                  f"(wall {row['wall_s']:.1f} s)", flush=True)
        if a.task_index is not None:
            return
    rows = collect(a, out)
    if a.check:
        check(a, out, rows)


if __name__ == "__main__":
    main()
