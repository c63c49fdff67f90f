#!/usr/bin/python3
"""Reference implementation of one-shot Wanda-sp as the paper runs it (resp prune with
schedule.mode one-shot), in float64 PyTorch on top of tools/reference_model.py.

For every target measured sparsity, starting from the dense model:

    counts:   s0 = measured sparsity of the dense model (> 0: norms and biases count only in
              the denominator); dh, dc = what removing one head / one channel from every
              unprotected layer adds to it; ratio = (target - s0) / (n_heads*dh + d_ff*dc);
              heads removed per layer = min(floor(ratio*n_heads + 0.5), n_heads - 1);
              channels removed per layer = the count in [0, d_ff-1] whose measured sparsity
              (with those heads) is closest to the target (ties: fewer channels)
    for each unprotected layer l, in order:
        run every calibration sequence (all tokens) through the model whose layers < l are
        already pruned (pruned heads / channels masked: q rows and o columns, gate/up rows and
        down columns zeroed -- the same function as the physically smaller model);
        head h    = sum_{j in h} ||X_j||_2 * sum_i |Wo[i, j]|   (X = o_proj input of layer l)
        channel c = ||A_c||_2 * sum_i |Wd[i, c]|               (A = down_proj input of layer l)
        remove the lowest-scored heads / channels (ties: lower id first)

Measured sparsity (resp-method.md): 1 - (weights of the decoder layers' linear maps still present)
/ (all parameters of the decoder layers, norms and biases included); k/v stay counted.

Usage:
    tools/reference_wanda_sp.py MODEL_DIR CALIBRATION.jsonl [--targets 0.2 0.3 0.4 0.5]
                                [--protected auto|none|0,3] [--out FILE.json]
    tools/reference_wanda_sp.py --fixtures [--check]
CALIBRATION.jsonl rows: {"prompt_tokens": [...], "output_tokens": [...]} (the fixture format of
tools/make_grad_fixtures.py) or {"tokens": [...]}; every token of a row counts.

--fixtures writes tests/fixtures/wanda_sp/<model>.json for the fixture models in FIXTURES (the
file tests/driver/test_wanda_one_shot.cpp compares the C++ prune with); --check recomputes them
and compares with the committed files instead (exit 1 on a difference). Runs with the pyenv
python3 or Debian's /usr/bin/python3 with python3-torch; deterministic.
"""

import argparse
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_model as rm  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE_MODELS = os.path.join(ROOT, "tests", "fixtures", "models")
FIXTURE_OUT = os.path.join(ROOT, "tests", "fixtures", "wanda_sp")
TARGETS = (0.2, 0.3, 0.4, 0.5)
TOLERANCE = 0.005
# (model directory under tests/fixtures/models, protected layers: "auto" or a list)
FIXTURES = (("qwen3-f32", "auto"), ("qwen2-sharded-f32", []))
F64 = torch.float64


class Dims:
    def __init__(self, config):
        self.arch = rm.architecture(config)
        self.H = int(config["hidden_size"])
        self.nh = int(config["num_attention_heads"])
        self.nkv = rm.num_kv_heads(config)
        self.D = rm.head_dim(config)
        self.F = int(config["intermediate_size"])
        self.L = int(config["num_hidden_layers"])
        attn_bias, _ = rm._expected_biases(config, self.arch)
        self.qkv_bias = "q_proj" in attn_bias
        self.o_bias = "o_proj" in attn_bias
        self.qk_norm = self.arch == "Qwen3ForCausalLM"


def default_protected(L):
    """Layers outside range(int(0.1 L), L - 1)."""
    keep = set(range(int(0.1 * L), L - 1))
    return [l for l in range(L) if l not in keep]


def measured_sparsity(dm, kept_heads, kept_channels):
    """kept_heads / kept_channels: per-layer counts."""
    H, D = dm.H, dm.D
    total = present = 0.0
    for l in range(dm.L):
        lt = 2 * H + 2 * dm.nh * D * H + 2 * dm.nkv * D * H + 3 * dm.F * H
        if dm.qkv_bias:
            lt += dm.nh * D + 2 * dm.nkv * D
        if dm.o_bias:
            lt += H
        if dm.qk_norm:
            lt += 2 * D
        total += lt
        present += 2 * kept_heads[l] * D * H + 2 * dm.nkv * D * H + 3 * kept_channels[l] * H
    return 1.0 - present / total


def uniform_counts(dm, protected, target, tolerance=TOLERANCE):
    prunable = [l for l in range(dm.L) if l not in protected]
    if not prunable:
        raise SystemExit(f"target {target}: every layer is protected")

    def sparsity(h, c):
        kh = [dm.nh - (h if l in prunable else 0) for l in range(dm.L)]
        kc = [dm.F - (c if l in prunable else 0) for l in range(dm.L)]
        return measured_sparsity(dm, kh, kc)

    s0 = sparsity(0, 0)   # the dense model's (norms and biases are never "present")
    dh, dc = sparsity(1, 0) - s0, sparsity(0, 1) - s0
    ratio = (target - s0) / (dm.nh * dh + dm.F * dc)
    heads = min(max(int(math.floor(ratio * dm.nh + 0.5)), 0), dm.nh - 1)
    exact = (target - s0 - heads * dh) / dc
    best, best_err = None, None
    for cand in (math.floor(exact), math.ceil(exact)):
        c = int(min(max(cand, 0), dm.F - 1))
        err = abs(sparsity(heads, c) - target)
        if best is None or err < best_err or (err == best_err and c < best):
            best, best_err = c, err
    s = sparsity(heads, best)
    if not abs(s - target) <= tolerance:
        raise SystemExit(f"target {target} unreachable: closest measured sparsity {s}")
    return {"target": target, "ratio": ratio, "heads_removed": heads, "channels_removed": best,
            "sparsity": s}


def masked_weights(dm, dense, kept):
    """Dense float64 weights with the heads / channels not in `kept` zeroed."""
    w = dict(dense)
    D = dm.D
    for l, (heads, chans) in enumerate(kept):
        p = f"model.layers.{l}."
        hm = torch.zeros(dm.nh, dtype=F64)
        hm[heads] = 1.0
        rows = hm.repeat_interleave(D)                       # [nh*D]
        cm = torch.zeros(dm.F, dtype=F64)
        cm[chans] = 1.0
        w[p + "self_attn.q_proj.weight"] = dense[p + "self_attn.q_proj.weight"] * rows[:, None]
        if p + "self_attn.q_proj.bias" in dense:
            w[p + "self_attn.q_proj.bias"] = dense[p + "self_attn.q_proj.bias"] * rows
        w[p + "self_attn.o_proj.weight"] = dense[p + "self_attn.o_proj.weight"] * rows[None, :]
        w[p + "mlp.gate_proj.weight"] = dense[p + "mlp.gate_proj.weight"] * cm[:, None]
        w[p + "mlp.up_proj.weight"] = dense[p + "mlp.up_proj.weight"] * cm[:, None]
        w[p + "mlp.down_proj.weight"] = dense[p + "mlp.down_proj.weight"] * cm[None, :]
    return w


def layer_input_sq_norms(config, weights, sequences, layer):
    """Sum over all tokens of all sequences of the squared o_proj and down_proj inputs of
    `layer` (per input column), from reference_model.forward_logits with its linear wrapped."""
    o_w = weights[f"model.layers.{layer}.self_attn.o_proj.weight"]
    d_w = weights[f"model.layers.{layer}.mlp.down_proj.weight"]
    sq = {"o": torch.zeros(o_w.shape[1], dtype=F64), "d": torch.zeros(d_w.shape[1], dtype=F64)}
    orig = rm.linear

    def linear(x, w, b=None):
        if w is o_w:
            sq["o"] += (x * x).sum(0)
        elif w is d_w:
            sq["d"] += (x * x).sum(0)
        return orig(x, w, b)

    rm.linear = linear
    try:
        with torch.no_grad():
            for toks in sequences:
                rm.forward_logits(config, weights, toks, dtype=F64)
    finally:
        rm.linear = orig
    return sq["o"], sq["d"]


def lowest(scores, remove):
    """Ids sorted by (score, id); the first `remove` go."""
    order = sorted(range(len(scores)), key=lambda i: (float(scores[i]), i))
    removed, kept = order[:remove], sorted(order[remove:])
    margin = None
    if 0 < remove < len(order):
        lo, hi = float(scores[order[remove - 1]]), float(scores[order[remove]])
        margin = (hi - lo) / max(abs(hi), 1e-300)
    return kept, margin


def one_shot(config, dense, sequences, protected, counts):
    dm = Dims(config)
    kept = [(list(range(dm.nh)), list(range(dm.F))) for _ in range(dm.L)]
    margins = []
    for l in range(dm.L):
        if l in protected:
            continue
        w = masked_weights(dm, dense, kept)
        x_sq, a_sq = layer_input_sq_norms(config, w, sequences, l)
        p = f"model.layers.{l}."
        wo = dense[p + "self_attn.o_proj.weight"].abs().sum(0)   # [nh*D] column sums
        wd = dense[p + "mlp.down_proj.weight"].abs().sum(0)      # [F]
        head = (x_sq.sqrt() * wo).reshape(dm.nh, dm.D).sum(1)
        chan = a_sq.sqrt() * wd
        kh, mh = lowest(head.tolist(), counts["heads_removed"])
        kc, mc = lowest(chan.tolist(), counts["channels_removed"])
        kept[l] = (kh, kc)
        margins += [m for m in (mh, mc) if m is not None]
    s = measured_sparsity(dm, [len(h) for h, _ in kept], [len(c) for _, c in kept])
    return kept, s, (min(margins) if margins else None)


def read_sequences(path):
    out = []
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            out.append(r["tokens"] if "tokens" in r else r["prompt_tokens"] + r["output_tokens"])
    return out


def compute(model_dir, calibration, targets, protected_spec):
    config, weights = rm.load_model_dir(model_dir)
    dense = {k: v.to(F64) for k, v in weights.items()}
    dm = Dims(config)
    protected = default_protected(dm.L) if protected_spec == "auto" else list(protected_spec)
    sequences = read_sequences(calibration)
    out = {"model": os.path.basename(os.path.normpath(model_dir)),
           "calibration": os.path.basename(calibration),
           "protected_layers": protected_spec if protected_spec == "auto" else protected,
           "protected": protected, "tolerance": TOLERANCE,
           "tokens": sum(len(s) for s in sequences), "targets": []}
    for t in targets:
        counts = uniform_counts(dm, protected, t)
        kept, s, margin = one_shot(config, dense, sequences, protected, counts)
        assert abs(s - counts["sparsity"]) < 1e-12
        rec = dict(counts)
        rec["min_cut_margin"] = margin   # smallest relative score gap at a cut (f32 safety)
        rec["layers"] = [{"heads": h, "channels": c} for h, c in kept]
        out["targets"].append(rec)
    return out


def dump(obj):
    return json.dumps(obj, indent=1, sort_keys=False) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir", nargs="?")
    ap.add_argument("calibration", nargs="?")
    ap.add_argument("--targets", type=float, nargs="+", default=list(TARGETS))
    ap.add_argument("--protected", default="auto", help="auto, none, or a comma list of layers")
    ap.add_argument("--out")
    ap.add_argument("--fixtures", action="store_true", help="write (or --check) the test fixtures")
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.fixtures:
        bad = 0
        for name, prot in FIXTURES:
            md = os.path.join(FIXTURE_MODELS, name)
            res = compute(md, os.path.join(md, "calibration.jsonl"), TARGETS, prot)
            path = os.path.join(FIXTURE_OUT, name + ".json")
            if args.check:
                with open(path) as f:
                    ok = f.read() == dump(res)
                print(f"{path}: {'ok' if ok else 'DIFFERS'}")
                bad += not ok
            else:
                os.makedirs(FIXTURE_OUT, exist_ok=True)
                with open(path, "w") as f:
                    f.write(dump(res))
                print(f"wrote {path}: " + ", ".join(
                    f"{r['target']}->{r['sparsity']:.4f} (-{r['heads_removed']}h "
                    f"-{r['channels_removed']}c, margin {r['min_cut_margin']:.2e})"
                    for r in res["targets"]))
        return 1 if bad else 0
    if not args.model_dir or not args.calibration:
        ap.error("MODEL_DIR and CALIBRATION.jsonl are required (or --fixtures)")
    prot = "auto" if args.protected == "auto" else (
        [] if args.protected == "none" else [int(x) for x in args.protected.split(",")])
    res = compute(args.model_dir, args.calibration, args.targets, prot)
    text = dump(res)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
