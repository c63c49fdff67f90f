#!/usr/bin/env python3
"""The paper's comparison, at matched sparsity, with one command.

    python3 tools/compare_methods.py [--seeds 1 2 3] [--sparsities 0.2 0.3 0.4 0.5]
        [--limit 500] [--jobs 2] [--work runs/compare-testbed] [--out docs]

Defaults: the testbed reasoning model models/resp-math-reasoner (docs/training.md) pruned with
configs/testbed.yaml and evaluated on the first 500 problems of its held-out split
data/synthetic-reasoning/test.jsonl (0-shot chat, thinking on, greedy). `--preset tiny` runs the
same protocol on the fast embedded model instead.

Methods (shared/docs/resp-method.md, "Baselines used in the paper"):
    resp            self-generated traces, regenerated at the milestones (the defaults)
    resp-no-regen   the dense model's traces throughout
    gisp            the same Taylor pruner calibrated on the gold rationales, no regeneration
    wanda-sp        |W| * ||X|| on gold rationales, one-shot, layer by layer, the same ratio in
                    every prunable layer (schedule.mode=one-shot: one checkpoint per target)
    magnitude       |W| summed per unit, global ranking, no data (a floor; deterministic, so one
                    run stands for every seed)

The seed sets the calibration subset (data.shuffle_seed) and the sampling of RESP's traces
(generation.seed).

Matched sparsity: every method is reported AT each target sparsity. A progressive run has a
checkpoint per iteration; when one lies within --tolerance (0.005) of the target it is evaluated,
otherwise the two checkpoints that bracket the target are evaluated and every per-problem
outcome is interpolated linearly in measured sparsity between them. A target a run never
brackets is reported as not reached (never as its closest checkpoint).

Statistics: mean +- std over seeds of accuracy (strict, flexible), mean generated tokens and
truncation rate; for RESP vs GISP and RESP vs RESP-no-regen at each target, a paired bootstrap
over problems (10,000 resamples of the problem set; per-problem outcome = mean over seeds) gives
the mean difference in flexible accuracy, its 95% interval and a two-sided p-value.

Durable record: every finished evaluation (per-problem outcomes) and every finished run's
checkpoint sparsities also go to --cache (default docs/results-data/<preset>.json, committed), so
a comparison that spans several sessions loses at most the prune run in progress when its work
directory (runs/, not committed) is gone: points in the cache are never recomputed.

Writes <work>/results.json (every measurement, per-problem outcomes included), <out>/results.md
and <out>/results.png (with --preset tiny: results-tiny.md / results-tiny.png). Every step whose output exists is skipped, so an interrupted comparison
continues where it stopped (run it again).
"""

import argparse
import concurrent.futures as cf
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PRESETS = {
    "testbed": {"config": "configs/testbed.yaml", "model": "models/resp-math-reasoner",
                "test": "data/synthetic-reasoning/test.jsonl", "limit": 500,
                "max_new_tokens": 900, "work": "runs/compare-testbed",
                "title": "the testbed reasoning model (models/resp-math-reasoner)"},
    "tiny": {"config": "configs/default.yaml", "model": "models/resp-math-tiny",
             "test": "data/synthetic-math/test.jsonl", "limit": 500, "max_new_tokens": 160,
             "work": "runs/compare-tiny",
             "title": "the fast embedded model (models/resp-math-tiny)"},
}

SCOPE = {
    "testbed": [
        "What this testbed can show: on a reasoning model whose own thinking is long, varied and "
        "unlike the terse gold rationales (the premise above), whether calibrating on the model's "
        "own traces instead of gold text changes accuracy at the same sparsity (RESP vs GISP), "
        "whether regenerating sampled traces during pruning helps (RESP vs RESP without "
        "regeneration), and how both compare with the paper's one-shot Wanda-sp and a data-free "
        "magnitude floor — with the spread over calibration seeds and a paired test over problems.",
        "What it cannot show: absolute numbers for 8B–32B models. The task is synthetic and narrow "
        "(one kind of word problem), the model has 4.7 M parameters and 8 layers (so the protected "
        "first and last layers are a quarter of the network, not a tenth), its 'own style' is a "
        "learned mixture of generated phrasings rather than open-ended reasoning, answers are "
        "scored by a deterministic extractor, and evaluation is greedy where the paper samples at "
        "0.6. A method that wins here is not thereby shown to win on Qwen3-8B; one that loses "
        "here on its own premise would need an explanation there.",
        "Wanda-sp is run as the paper runs it: one shot, the same kept counts in every unprotected "
        "layer (on 8 layers only the last is protected). On this narrow model that rule is costly: "
        "at target 0.2 it removes 2 of the 8 query heads of every unprotected layer, layer 0 "
        "included, while RESP, GISP and magnitude reach 0.197 by removing MLP channels only (all 64 "
        "heads kept; `resp inspect RUN --layers` on the runs of 2026-12-03). Its collapse measures "
        "the uniform rule on an 8-head model as much as its criterion; models with 32–64 heads per "
        "layer lose less per removed head.",
    ],
    "tiny": [
        "This model cannot judge the method: it was trained on the gold rationales, so its own "
        "traces are the gold text in `<think>` tags (docs/training.md). GISP vs RESP here tests "
        "a formatting difference, and regeneration cannot change near-deterministic traces. The "
        "table is kept as a check of the pipeline on a fast model; the comparison is "
        "docs/results.md on the testbed.",
    ],
}

PROGRESSIVE = {
    "resp": [],
    "resp-no-regen": ["regeneration.milestones=[]"],
    "gisp": ["calibration.source=gold", "regeneration.milestones=[]"],
    "magnitude": ["importance.criterion=magnitude", "regeneration.milestones=[]"],
}
METHODS = ["resp", "resp-no-regen", "gisp", "wanda-sp", "magnitude"]
SEED_FREE = {"magnitude"}
PAIRS = [("resp", "gisp"), ("resp", "resp-no-regen")]


def run(cmd, log):
    with open(log, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    if r.returncode != 0:
        raise SystemExit(f"compare_methods: failed ({r.returncode}): {' '.join(cmd)}; see {log}")


def method_overrides(method, sparsities):
    if method == "wanda-sp":
        targets = ",".join(f"{s:g}" for s in sparsities)
        return ["schedule.mode=one-shot", f"schedule.targets=[{targets}]",
                "importance.criterion=wanda-sp", "importance.ranking=per-layer",
                "calibration.source=gold"]
    return PROGRESSIVE[method]


def checkpoint_history(run_dir):
    """(iteration, measured sparsity) of every checkpoint of a run, read from the newest one's
    history (checkpoint-format.md)."""
    import h5py
    files = sorted(Path(run_dir).glob("iter_*.h5"))
    if not files:
        raise SystemExit(f"compare_methods: {run_dir} holds no checkpoint")
    with h5py.File(files[-1], "r") as f:
        hist = f.attrs["history"]
    hist = json.loads(hist.decode() if isinstance(hist, bytes) else hist)
    present = {int(p.stem.split("_")[1]) for p in files}
    return [(int(h["iteration"]), float(h["sparsity"])) for h in hist
            if int(h["iteration"]) in present]


def choose_checkpoints(history, target, tol):
    """[(iteration, sparsity, weight)] whose weighted outcomes stand for `target`, or None."""
    if not history:
        return None
    best = min(history, key=lambda h: abs(h[1] - target))
    if abs(best[1] - target) <= tol:
        return [(best[0], best[1], 1.0)]
    below = [h for h in history if h[1] < target]
    above = [h for h in history if h[1] > target]
    if not below or not above:
        return None
    lo = max(below, key=lambda h: h[1])
    hi = min(above, key=lambda h: h[1])
    w = (target - lo[1]) / (hi[1] - lo[1])
    return [(lo[0], lo[1], 1.0 - w), (hi[0], hi[1], w)]


class Cache:
    """The durable record of finished work: {"settings", "dense", "runs": {"method/seedN":
    {"history": [[iteration, sparsity], ...], "evals": {iteration: outcomes}}}}. Outcomes are
    stored compactly: "0"/"1" strings for strict, flexible and truncated, a list of token counts.
    Written atomically after every addition; a cache made under other settings is refused."""

    def __init__(self, path, settings):
        self.path = Path(path)
        self.lock = threading.Lock()
        self.data = {"settings": settings, "dense": None, "runs": {}}
        if self.path.exists():
            data = json.loads(self.path.read_text())
            if data.get("settings") != settings:
                raise SystemExit(f"compare_methods: {self.path} was made with other settings "
                                 f"({data.get('settings')}); pass another --cache or remove it")
            self.data = data

    @staticmethod
    def pack(outcomes):
        bits = lambda k: "".join("1" if o[k] >= 0.5 else "0" for o in outcomes)
        return {"strict": bits("strict"), "flexible": bits("flexible"),
                "truncated": bits("truncated"), "tokens": [int(o["tokens"]) for o in outcomes]}

    @staticmethod
    def unpack(p):
        return [{"strict": float(a == "1"), "flexible": float(b == "1"), "tokens": float(t),
                 "truncated": float(c == "1")}
                for a, b, c, t in zip(p["strict"], p["flexible"], p["truncated"], p["tokens"])]

    def save(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, separators=(",", ":")) + "\n")
        tmp.replace(self.path)

    def run_entry(self, key):
        with self.lock:
            return self.data["runs"].setdefault(key, {"history": None, "evals": {}})

    def set(self, setter):
        with self.lock:
            setter(self.data)
            self.save()


def evaluate(args, model, out_json, log):
    """Greedy eval; returns the per-problem outcomes (strict, flexible, tokens, truncated)."""
    items = Path(str(out_json) + ".items.jsonl")
    if not out_json.exists():
        run([args.resp, "eval", "--model", str(model), "--task", "gsm8k", "--data", args.test,
             "--shots", "0", "--chat", "--thinking", "on", "--temperature", "0",
             "--max-new-tokens", str(args.max_new_tokens), "--limit", str(args.limit),
             "--batch-size", "32", "--threads", str(args.threads), "--quiet",
             "--items", str(items), "--out", str(out_json)], log)
    outcomes = []
    with open(items) as f:
        for line in f:
            it = json.loads(line)
            c = it["correct"]
            outcomes.append({"strict": float(bool(c["strict"])),
                             "flexible": float(bool(c["flexible"])),
                             "tokens": float(it["n_output_tokens"]),
                             "truncated": float(it["finish_reason"] == "length")})
    return outcomes


def export_iteration(args, run_dir, iteration, model, log):
    if model.exists() and (model / "model.safetensors").exists():
        return
    if model.exists():
        shutil.rmtree(model)
    run([args.resp, "export", "--run", str(run_dir), "--iteration", str(iteration), "--format",
         "hetero", "--out", str(model)], log)


def combine(parts):
    """Weighted per-problem mix of the outcomes of the bracketing checkpoints."""
    n = len(parts[0][1])
    return [{k: sum(w * outs[i][k] for w, outs in parts) for k in parts[0][1][i]}
            for i in range(n)]


def summarise(outcomes):
    n = len(outcomes)
    return {k: sum(o[k] for o in outcomes) / n for k in ("strict", "flexible", "tokens",
                                                           "truncated")}


def snapshot_path(args, method, seed):
    return Path(args.snapshots) / f"{method}-seed{seed}.tar.xz"


def restore_snapshot(args, method, seed, run_dir):
    """A run cut short by the end of a session continues from its snapshot (--snapshot)."""
    snap = snapshot_path(args, method, seed)
    if any(run_dir.glob("iter_*.h5")) or not snap.exists():
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(snap) as t:
        names = t.getnames()
        if any("/" in n or n.startswith(".") for n in names):
            raise SystemExit(f"compare_methods: {snap} holds unexpected paths")
        t.extractall(run_dir)
    print(f"compare_methods: {method} seed {seed} continues from {snap}")


def take_snapshots(args):
    """Packs every unfinished run directory (all checkpoints: pending evaluations may need any
    of them) into --snapshots, so that a comparison spanning sessions loses no pruning work;
    drops the snapshots of finished runs. Safe while runs are in progress (checkpoints are
    renamed into place whole; .tmp files are skipped)."""
    Path(args.snapshots).mkdir(parents=True, exist_ok=True)
    for method in args.methods:
        for seed in (args.seeds[:1] if method in SEED_FREE else args.seeds):
            key = f"{method}/seed{seed}"
            snap = snapshot_path(args, method, seed)
            if run_finished(args, key):
                snap.unlink(missing_ok=True)
                continue
            run_dir = Path(args.work) / method / f"seed{seed}" / "run"
            files = sorted(p for p in run_dir.glob("*")
                           if p.name in ("config.yaml", "latest") or
                           (p.name.startswith("iter_") and p.suffix == ".h5"))
            if not any(p.suffix == ".h5" for p in files):
                continue
            tmp = snap.with_suffix(".tmp")
            with tarfile.open(tmp, "w:xz") as t:
                for p in files:
                    t.add(p, arcname=p.name)
            tmp.replace(snap)
            print(f"compare_methods: snapshot {snap} ({snap.stat().st_size / 1e6:.2f} MB)")


def run_finished(args, key):
    """True when the cache holds the run's history and every evaluation its rows need."""
    entry = args.cache.data["runs"].get(key)
    if not entry or entry.get("history") is None:
        return False
    history = [tuple(h) for h in entry["history"]]
    for sp in args.sparsities:
        for it, _, _ in choose_checkpoints(history, sp, args.tolerance) or []:
            if str(it) not in entry["evals"]:
                return False
    return True


def method_seed(args, method, seed, compute=True):
    """One prune run, then the matched-sparsity evaluations. Returns a list of rows. With
    compute=False nothing runs: rows come from the cache, and a target whose evaluations are not
    all there yet is a row with reached=None (pending)."""
    key = f"{method}/seed{seed}"
    if not compute:
        entry = args.cache.data["runs"].get(key)
        if not entry or entry.get("history") is None:
            return [{"method": method, "seed": seed, "target": sp, "reached": None,
                     "checkpoints": []} for sp in args.sparsities]
        return rows_from_cache(args, method, seed, entry)
    work = Path(args.work) / method / f"seed{seed}"
    work.mkdir(parents=True, exist_ok=True)
    log = work / "log.txt"
    run_dir = work / "run"
    restore_snapshot(args, method, seed, run_dir)
    sets = method_overrides(method, args.sparsities) + [
        f"generation.seed={seed}", f"data.shuffle_seed={seed}"] + args.set
    cmd = [args.resp, "prune", "--config", args.config, "--out", str(run_dir), "--resume",
           "--threads", str(args.threads)]
    for s in sets:
        cmd += ["--set", s]
    entry = args.cache.run_entry(key)
    if entry["history"] is None:
        run(cmd, log)
        history = checkpoint_history(run_dir)
        args.cache.set(lambda d: d["runs"][key].update(history=history))
    history = [tuple(h) for h in entry["history"]]
    # Evaluate every checkpoint the rows need that the cache lacks; the rows then come from it.
    for sp in args.sparsities:
        for it, _, _ in choose_checkpoints(history, sp, args.tolerance) or []:
            if str(it) in entry["evals"]:
                continue
            if not (run_dir / f"iter_{it:04d}.h5").exists():
                run(cmd, log)  # the work directory is gone: prune again (deterministic)
            model = work / f"model-iter{it:04d}"
            export_iteration(args, run_dir, it, model, log)
            outs = evaluate(args, model, work / f"eval-iter{it:04d}.json", log)
            args.cache.set(lambda d, it=it, outs=outs:
                           d["runs"][key]["evals"].__setitem__(str(it), Cache.pack(outs)))
    if run_finished(args, key):
        snapshot_path(args, method, seed).unlink(missing_ok=True)
    return rows_from_cache(args, method, seed, entry)


def rows_from_cache(args, method, seed, entry):
    rows = []
    history = [tuple(h) for h in entry["history"]]
    for sp in args.sparsities:
        chosen = choose_checkpoints(history, sp, args.tolerance)
        row = {"method": method, "seed": seed, "target": sp}
        if chosen is None:
            row.update(reached=False, checkpoints=[])
        elif any(str(it) not in entry["evals"] for it, _, _ in chosen):
            row.update(reached=None, checkpoints=[])
        else:
            outcomes = combine([(w, Cache.unpack(entry["evals"][str(it)]))
                                for it, _, w in chosen])
            row.update(reached=True, outcomes=outcomes, **summarise(outcomes),
                       measured=sum(w * m for _, m, w in chosen),
                       checkpoints=[{"iteration": it, "sparsity": m, "weight": w}
                                    for it, m, w in chosen])
        rows.append(row)
    return rows


def mean_std(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None, None
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def fmt(xs, scale=100.0, digits=1):
    m, s = mean_std(xs)
    if m is None:
        return "n/a"
    return f"{m * scale:.{digits}f} ± {s * scale:.{digits}f}"


def paired_bootstrap(a, b, resamples=10000, seed=0):
    """Mean of a-b over problems, its 95% percentile interval and a two-sided p-value (share of
    resampled means on the other side of zero, doubled)."""
    d = [x - y for x, y in zip(a, b)]
    n = len(d)
    rng = random.Random(seed)
    means = [sum(rng.choices(d, k=n)) / n for _ in range(resamples)]
    means.sort()
    mean = sum(d) / n
    lo, hi = means[int(0.025 * resamples)], means[int(0.975 * resamples) - 1]
    le = sum(m <= 0 for m in means) / resamples
    ge = sum(m >= 0 for m in means) / resamples
    return {"diff": mean, "ci95": [lo, hi], "p": min(1.0, 2 * min(le, ge))}


def per_problem_mean(rows, method, sp, seeds):
    sel = [r for r in rows if r["method"] == method and r["target"] == sp and r["reached"]
           and r["seed"] in seeds]
    if not sel:
        return None
    n = len(sel[0]["outcomes"])
    return [statistics.fmean(r["outcomes"][i]["flexible"] for r in sel) for i in range(n)]


def bootstrap_tests(args, rows):
    """Each pair over the seeds both methods have finished at that target (all of them once the
    comparison is complete), so that a partial report still compares like with like."""
    tests = []
    for a, b in PAIRS:
        for sp in args.sparsities:
            done = lambda m: {r["seed"] for r in rows
                              if r["method"] == m and r["target"] == sp and r["reached"]}
            seeds = done(a) & done(b)
            if not seeds:
                continue
            pa = per_problem_mean(rows, a, sp, seeds)
            pb = per_problem_mean(rows, b, sp, seeds)
            tests.append({"a": a, "b": b, "target": sp, "seeds": sorted(seeds),
                          **paired_bootstrap(pa, pb)})
    return tests


def findings(tests, alpha=0.05):
    """One sentence per compared pair, read off the bootstrap (flexible accuracy)."""
    out = []
    for a, b in PAIRS:
        ts = [t for t in tests if t["a"] == a and t["b"] == b]
        if not ts:
            continue
        hi = [t for t in ts if t["p"] < alpha and t["diff"] > 0]
        lo = [t for t in ts if t["p"] < alpha and t["diff"] < 0]
        same = [t for t in ts if t["p"] >= alpha]
        at = lambda xs: ", ".join(f"{t['target']:.2f}" for t in xs)
        span = lambda xs: (f"{min(t['diff'] for t in xs) * 100:+.1f} to "
                           f"{max(t['diff'] for t in xs) * 100:+.1f} points")
        parts = []
        if hi:
            parts.append(f"{a} is more accurate at {at(hi)} ({span(hi)})")
        if lo:
            parts.append(f"{a} is less accurate at {at(lo)} ({span(lo)})")
        if same:
            biggest = max(abs(t["diff"]) for t in same) * 100
            parts.append(f"no difference is detectable at {at(same)} (|difference| ≤ "
                         f"{biggest:.1f} points, p ≥ {alpha})")
        seeds = sorted({k for t in ts for k in t["seeds"]})
        out.append(f"- **{a} vs {b}** (paired bootstrap over problems, seeds "
                   f"{' '.join(map(str, seeds))}, p < {alpha} counted): " + "; ".join(parts) + ".")
    return out


def write_report(args, dense, rows, tests, premise):
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = " ".join(map(str, args.seeds))
    lines = [f"# Results: RESP and its baselines on {PRESETS[args.preset]['title']}", "",
             f"Produced by `python3 tools/compare_methods.py{' --preset ' + args.preset if args.preset != 'testbed' else ''}` "
             f"({len(args.seeds)} seed{'s' if len(args.seeds) > 1 else ''}: {seeds}; held-out `{args.test}`, first {args.limit} "
             f"problems, greedy decoding, 0-shot chat with thinking, at most "
             f"{args.max_new_tokens} new tokens; pruning config `{args.config}`"
             f"{' with ' + ', '.join(args.set) if args.set else ''}).", ""]
    pending = [r for r in rows if r["reached"] is None]
    if pending:
        runs = {(r["method"], r["seed"]) for r in rows}
        open_runs = {(r["method"], r["seed"]) for r in pending}
        lines += [f"**Partial results.** {len(runs) - len(open_runs)} of {len(runs)} "
                  "method/seed runs are complete; rows say how many seeds they average, and a "
                  "comparison uses only the seeds both of its methods have finished. Pending: "
                  + ", ".join(f"{m} seed {k}" for m, k in sorted(
                      open_runs, key=lambda x: (METHODS.index(x[0]), x[1])))
                  + ". Rerun the command to continue (finished work is kept in "
                  f"`{args.cache.path}`).", ""]
    if premise:
        lines += ["## The premise", "", premise, ""]
    lines += ["## What this comparison can and cannot show", ""]
    for para in SCOPE[args.preset]:
        lines += [para, ""]
    lines += ["## Accuracy at matched sparsity", "",
              "Every row is at its target sparsity: the checkpoint within "
              f"±{args.tolerance} of it, or a linear interpolation (per problem, in measured "
              "sparsity) between the two checkpoints that bracket it. Mean ± standard deviation "
              "over seeds; the seed sets the calibration subset and the sampling of RESP's traces "
              "(magnitude uses no data: one run).", "",
              f"Dense model: strict {dense['strict'] * 100:.1f}%, flexible "
              f"{dense['flexible'] * 100:.1f}%, {dense['tokens']:.1f} generated tokens on "
              f"average, truncated {dense['truncated'] * 100:.1f}%.", "",
              "| method | sparsity | seeds | checkpoints used (measured) | flexible (%) "
              "| strict (%) | generated tokens | truncated (%) |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for method in args.methods:
        for sp in args.sparsities:
            sel = [r for r in rows if r["method"] == method and r["target"] == sp]
            if not sel:
                continue
            ok = [r for r in sel if r["reached"]]
            missed = sum(r["reached"] is False for r in sel)
            waiting = sum(r["reached"] is None for r in sel)
            notes = ([f"{missed} not reached"] if missed else []) + (
                [f"{waiting} pending"] if waiting else [])
            seeds = f"{len(ok)}" + (f" ({', '.join(notes)})" if notes else "")
            if not ok:
                state = "not reached" if not waiting else "pending"
                lines.append(f"| {method} | {sp:.2f} | {seeds} | {state} | n/a | n/a | n/a "
                             "| n/a |")
                continue
            used = sorted({round(c["sparsity"], 3) for r in ok for c in r["checkpoints"]})
            lines.append(
                f"| {method} | {sp:.2f} | {seeds} | {', '.join(f'{u:.3f}' for u in used)}"
                f" | {fmt([r['flexible'] for r in ok])} | {fmt([r['strict'] for r in ok])}"
                f" | {fmt([r['tokens'] for r in ok], scale=1.0)}"
                f" | {fmt([r['truncated'] for r in ok])} |")
    if tests:
        lines += ["", "## What the numbers say", ""] + findings(tests) + [
                  "", "## Paired bootstrap over problems", "",
                  "Difference in flexible accuracy (first method minus second; per-problem "
                  "outcome = mean over seeds), 10,000 resamples of the problems.", "",
                  "| comparison | sparsity | seeds | difference (points) | 95% interval "
                  "| p (two-sided) |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for t in tests:
            lines.append(f"| {t['a']} − {t['b']} | {t['target']:.2f} "
                         f"| {' '.join(map(str, t['seeds']))} | {t['diff'] * 100:+.1f} "
                         f"| [{t['ci95'][0] * 100:+.1f}, {t['ci95'][1] * 100:+.1f}] "
                         f"| {t['p']:.4f} |")
    stem = "results" if args.preset == "testbed" else f"results-{args.preset}"
    lines += ["", f"![accuracy vs sparsity]({stem}.png)", ""]
    (out / f"{stem}.md").write_text("\n".join(lines))
    plot(args, dense, rows, out / f"{stem}.png")


def plot(args, dense, rows, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("compare_methods: matplotlib missing (apt-get install python3-matplotlib); "
              "no plot", file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for method in args.methods:
        xs, ys, es = [], [], []
        for sp in args.sparsities:
            ok = [r for r in rows if r["method"] == method and r["target"] == sp and r["reached"]]
            if ok:
                m, s = mean_std([r["flexible"] for r in ok])
                xs.append(sp)
                ys.append(m * 100)
                es.append(s * 100)
        if xs:
            ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=method)
    ax.axhline(dense["flexible"] * 100, color="gray", linestyle="--", label="dense")
    ax.set_xlabel("measured sparsity (matched)")
    ax.set_ylabel("held-out accuracy, flexible (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("Structured pruning at matched sparsity")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=list(PRESETS), default="testbed")
    ap.add_argument("--resp", default=str(ROOT / "build/resp"))
    ap.add_argument("--config")
    ap.add_argument("--set", action="append", default=[],
                    help="extra override for every prune run (section.key=value)")
    ap.add_argument("--model")
    ap.add_argument("--test")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--max-new-tokens", type=int)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--sparsities", type=float, nargs="+", default=[0.2, 0.3, 0.4, 0.5])
    ap.add_argument("--tolerance", type=float, default=0.005)
    ap.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    ap.add_argument("--premise", help="premise JSON of tools/measure_premise.py to quote "
                    "(default for the testbed: docs/results-data/premise-testbed.json)")
    ap.add_argument("--jobs", type=int, default=2, help="method/seed runs at once")
    ap.add_argument("--threads", type=int, default=1, help="threads per resp process")
    ap.add_argument("--work")
    ap.add_argument("--cache", help="durable record of finished work (default "
                    "docs/results-data/<preset>.json)")
    ap.add_argument("--out", default="docs")
    ap.add_argument("--snapshots", help="where unfinished runs are packed by --snapshot and "
                    "restored from (default docs/results-data/<preset>-runs)")
    ap.add_argument("--report-only", action="store_true",
                    help="run nothing: write the report from the cache, marking what is pending")
    ap.add_argument("--snapshot", action="store_true",
                    help="only pack the unfinished run directories (e.g. before a session ends, "
                    "while a comparison runs) and exit")
    args = ap.parse_args()
    preset = PRESETS[args.preset]
    for key in ("config", "model", "test", "limit", "max_new_tokens", "work"):
        if getattr(args, key) is None:
            setattr(args, key, preset[key])
    Path(args.work).mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    args.cache = Cache(args.cache or f"docs/results-data/{args.preset}.json",
                       {"config": args.config, "model": args.model, "test": args.test,
                        "limit": args.limit, "max_new_tokens": args.max_new_tokens,
                        "set": args.set, "sparsities": args.sparsities})
    if args.snapshots is None:
        args.snapshots = f"docs/results-data/{args.preset}-runs"
    if args.snapshot:
        take_snapshots(args)
        return
    if args.cache.data["dense"] is None:
        if args.report_only:
            raise SystemExit("compare_methods: nothing to report yet (no dense evaluation in "
                             f"{args.cache.path})")
        outs = evaluate(args, args.model, Path(args.work) / "dense-eval.json",
                        Path(args.work) / "dense-log.txt")
        args.cache.set(lambda d: d.__setitem__("dense", Cache.pack(outs)))
    dense = summarise(Cache.unpack(args.cache.data["dense"]))
    # Seed-major, cheapest method first: a comparison cut short by the end of a session has
    # every method at its first seeds rather than every seed of a few methods.
    tasks = [(m, s) for s in args.seeds for m in reversed(args.methods)
             if not (m in SEED_FREE and s != args.seeds[0])]
    rows = []
    if args.report_only:
        for m, s in tasks:
            rows.extend(method_seed(args, m, s, compute=False))
    else:
        with cf.ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for fut in cf.as_completed([pool.submit(method_seed, args, m, s)
                                        for m, s in tasks]):
                rows.extend(fut.result())
    rows.sort(key=lambda r: (METHODS.index(r["method"]), r["seed"], r["target"]))
    tests = bootstrap_tests(args, rows)
    premise = None
    if args.premise is None and args.preset == "testbed":
        args.premise = "docs/results-data/premise-testbed.json"
    if args.premise and Path(args.premise).exists():
        premise = json.loads(Path(args.premise).read_text()).get("summary")
    (Path(args.work) / "results.json").write_text(
        json.dumps({"dense": dense, "rows": rows, "bootstrap": tests}) + "\n")
    write_report(args, dense, rows, tests, premise)
    print(f"compare_methods: wrote the report to {args.out}/")


if __name__ == "__main__":
    main()
