#!/usr/bin/python3
"""Float64 gradient / importance-score reference fixtures for the pruner.

Usage:
    /usr/bin/python3 tools/make_grad_fixtures.py [--out tests/fixtures/models] [--only NAME ...] [--no-verify]
    /usr/bin/python3 tools/make_grad_fixtures.py --check [--out tests/fixtures/models] [--only NAME ...]

Needs torch and numpy only (Debian's /usr/bin/python3).  Reads the fixture
models written by tools/make_fixtures.py and uses the forward pass of
tools/reference_model.py (imported, not copied) in float64 with autograd.

For every model NAME in MODELS it writes into tests/fixtures/models/NAME/:

    calibration.jsonl           3 samples in the engine's trace format
                                {"id": "c0", "prompt_tokens": [...], "output_tokens": [...]}
                                (prompt lengths 5, 1, 12; output lengths 9, 14, 4;
                                ids uniform in [0, 256) from a fixed seed; the same
                                tokens for every model)
    grad_reference.safetensors  G = sum_i dL_i/dW of the decode-only loss for EVERY
                                weight tensor, same names as the model's tensors, F32
                                (float64 values rounded to nearest f32)
    grad_reference.json         losses and the per-layer head / channel scores of the
                                criteria taylor (decode-only), taylor_full (full loss),
                                taylor-vectorize (decode-only), wanda-sp, magnitude

Losses (x = prompt ++ output, T = len(x), P = len(prompt), lp[t] = log p(x[t+1] | x[..t]),
t = 0..T-2):
    decode-only  L = -(1/(T-P)) * sum_{t : t+1 >= P} lp[t]      (prompt targets masked)
    full         L = -(1/(T-1)) * sum_t lp[t]

Scores (N = 3 samples, H = hidden_size, D = head_dim, d_ff = intermediate_size, G the
summed gradient; head h = rows h*D..h*D+D-1 of q_proj.weight and the same columns of
o_proj.weight; channel c = row c of gate/up_proj.weight and column c of down_proj.weight):
    taylor            head = (sum |Wq*Gq/N| + sum |Wo*Go/N|) / (4*D*H)
                      chan = (sum |Wg*Gg/N| + sum |Wu*Gu/N| + sum |Wd*Gd/N|) / (3*d_ff)
    taylor-vectorize  head = |sum Wq*Gq + sum Wo*Go| / N / (4*D*H)
                      chan = |sum Wg*Gg + sum Wu*Gu + sum Wd*Gd| / N / (3*d_ff)
    wanda-sp          head = sum_{j in h} ||X_j||_2 * sum_i |Wo[i, j]|  (X = o_proj input)
                      chan = ||A_c||_2 * sum_i |Wd[i, c]|             (A = down_proj input)
                      norms over all tokens (prompt + output) of all samples
    magnitude         head = sqrt(sum Wq^2 + sum Wo^2), chan = sqrt(sum Wg^2 + sum Wu^2 + sum Wd^2)

Unless --no-verify is given, generation also runs and prints self-checks:
  * central finite differences (float64) of the summed decode-only loss for two
    entries (largest |G| and a random one) of every weight tensor, vs autograd;
  * the loss mask: changing the target of a prompt position t < P-1 leaves the
    decode-only loss bit-identical, changing a target at t >= P-1 changes it, and
    dL/dlogits is exactly zero on rows t < P-1;
  * taylor-vectorize from the weights equals the activation form
    sum_t <y_t, dy_t> over the structure (q_proj output without bias, o_proj input,
    gate/up outputs, down_proj input) on every layer;
  * the captured forward reproduces reference_model.token_logprobs bit for bit.
It exits non-zero if a check fails.

Output is deterministic (single-threaded torch, fixed seed); rerunning rewrites
identical files.  --check recomputes everything from the files on disk and compares
with the stored grad_reference.* (json: rel. diff < 1e-12; tensors: < 1e-6 relative
to the tensor's max |G|) and calibration.jsonl (exact).

Note: tools/make_fixtures.py deletes *.safetensors and *.jsonl in the model
directories when it regenerates them; rerun this script afterwards.
"""

import argparse
import contextlib
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_model as rm  # noqa: E402

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "tests", "fixtures", "models")

MODELS = ("qwen3-f32", "qwen2-sharded-f32", "llama-mqa-f32", "llama31-bf16")
PROMPT_LENS = (5, 1, 12)
OUTPUT_LENS = (9, 14, 4)
TOKEN_RANGE = 256          # ids in [0, 256): below bos/eos (256, 257, ...)
CALIB_SEED = 20240611
FD_SEED = 7
FD_STEP = 1e-5
F64 = torch.float64


# --------------------------------------------------------------------------
# Calibration samples
# --------------------------------------------------------------------------

def make_calibration():
    g = torch.Generator().manual_seed(CALIB_SEED)
    out = []
    for i, (p, o) in enumerate(zip(PROMPT_LENS, OUTPUT_LENS)):
        toks = torch.randint(0, TOKEN_RANGE, (p + o,), generator=g).tolist()
        out.append({"id": f"c{i}", "prompt_tokens": toks[:p], "output_tokens": toks[p:]})
    return out


def calibration_text(samples):
    return "".join(json.dumps(s) + "\n" for s in samples)


def read_calibration(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


# --------------------------------------------------------------------------
# Forward with captured linear-layer activations
# --------------------------------------------------------------------------

@contextlib.contextmanager
def capture_linears(weights):
    """Temporarily wraps reference_model.linear so that every call whose weight is
    one of `weights` (identity match; float64 leaves pass through .to(float64)
    unchanged) records (input x, output without bias y0).  The arithmetic is the
    same as reference_model.linear, so results are bit-identical."""
    names = {id(t): n for n, t in weights.items()}
    rec = {}
    orig = rm.linear

    def linear(x, w, b=None):
        y = x @ w.t()
        n = names.get(id(w))
        if n is not None:
            rec[n] = (x, y)
        if b is not None:
            y = y + b
        return y

    rm.linear = linear
    try:
        yield rec
    finally:
        rm.linear = orig


def loss_weights(T, P, mode):
    """Per-position weights [T-1]; loss = -sum_t w_t lp[t]."""
    w = torch.zeros(T - 1, dtype=F64)
    if mode == "decode":
        n = T - P
        for t in range(T - 1):
            if t + 1 >= P:
                w[t] = 1.0 / n
    else:
        w[:] = 1.0 / (T - 1)
    return w


def seq_loss(logits, targets, P, mode):
    """targets [T-1] (normally x[1:]); returns the scalar loss."""
    T = logits.shape[0]
    lp = torch.log_softmax(logits[:-1], dim=-1).gather(1, targets[:, None]).squeeze(1)
    return -(loss_weights(T, P, mode) * lp).sum()


def layer_names(i):
    p = f"model.layers.{i}."
    return {k: p + v for k, v in {
        "q": "self_attn.q_proj.weight", "o": "self_attn.o_proj.weight",
        "g": "mlp.gate_proj.weight", "u": "mlp.up_proj.weight", "d": "mlp.down_proj.weight"}.items()}


class Dims:
    def __init__(self, config):
        self.H = int(config["hidden_size"])
        self.nh = int(config["num_attention_heads"])
        self.D = rm.head_dim(config)
        self.F = int(config["intermediate_size"])
        self.L = int(config["num_hidden_layers"])


def run_samples(config, leaves, samples):
    """Forward + backward over all samples.  Returns a dict with per-sample losses,
    summed gradients (decode-only and full), wanda squared norms and the
    activation-form vectorize sums."""
    dm = Dims(config)
    names = list(leaves)
    out = {
        "loss_decode": [], "loss_full": [],
        "G_decode": {n: torch.zeros_like(leaves[n]) for n in names},
        "G_full": {n: torch.zeros_like(leaves[n]) for n in names},
        "attn_sq": [torch.zeros(dm.nh * dm.D, dtype=F64) for _ in range(dm.L)],
        "act_sq": [torch.zeros(dm.F, dtype=F64) for _ in range(dm.L)],
        "act_head": [torch.zeros(dm.nh, dtype=F64) for _ in range(dm.L)],
        "act_chan": [torch.zeros(dm.F, dtype=F64) for _ in range(dm.L)],
        "max_logit_diff": 0.0,
    }
    for s in samples:
        x = s["prompt_tokens"] + s["output_tokens"]
        P = len(s["prompt_tokens"])
        tok = torch.tensor(x, dtype=torch.long)
        with capture_linears(leaves) as rec:
            logits = rm.forward_logits(config, leaves, tok, dtype=F64)
        assert len(rec) == 7 * dm.L, f"captured {len(rec)} linears, expected {7 * dm.L}"
        # The wrapped forward must reproduce reference_model's own log-probs exactly.
        with torch.no_grad():
            ref_lp = rm.token_logprobs(config, leaves, tok, dtype=F64)
        my_lp = rm.logprobs_from_logits(logits, tok).detach()
        out["max_logit_diff"] = max(out["max_logit_diff"], float((ref_lp - my_lp).abs().max()))

        Ld = seq_loss(logits, tok[1:], P, "decode")
        Lf = seq_loss(logits, tok[1:], P, "full")
        # Same numbers as the reference's own log-probs with explicit masking.
        assert abs(float(Ld) + float(my_lp[P - 1:].mean())) < 1e-13
        out["loss_decode"].append(float(Ld))
        out["loss_full"].append(float(Lf))

        acts = []
        for i in range(dm.L):
            ln = layer_names(i)
            acts += [rec[ln["q"]][1], rec[ln["o"]][0], rec[ln["g"]][1], rec[ln["u"]][1], rec[ln["d"]][0]]
        gd = torch.autograd.grad(Ld, [leaves[n] for n in names] + acts, retain_graph=True, allow_unused=True)
        gf = torch.autograd.grad(Lf, [leaves[n] for n in names], allow_unused=True)
        for n, g1, g2 in zip(names, gd[:len(names)], gf):
            if g1 is not None:
                out["G_decode"][n] += g1
            if g2 is not None:
                out["G_full"][n] += g2
        dacts = gd[len(names):]
        for i in range(dm.L):
            yq, xo, yg, yu, xd = [a.detach() for a in acts[5 * i:5 * i + 5]]
            dq, do, dg, du, dd = dacts[5 * i:5 * i + 5]
            out["attn_sq"][i] += (xo ** 2).sum(0)
            out["act_sq"][i] += (xd ** 2).sum(0)
            out["act_head"][i] += ((yq * dq).sum(0) + (xo * do).sum(0)).reshape(dm.nh, dm.D).sum(1)
            out["act_chan"][i] += (yg * dg).sum(0) + (yu * du).sum(0) + (xd * dd).sum(0)
    return out


# --------------------------------------------------------------------------
# Scores
# --------------------------------------------------------------------------

def head_rows(W, dm):      # q_proj [nh*D, H] -> [nh, D*H]
    return W.reshape(dm.nh, dm.D * dm.H)


def head_cols(W, dm):      # o_proj [H, nh*D] -> [nh, H*D]
    return W.reshape(dm.H, dm.nh, dm.D).permute(1, 0, 2).reshape(dm.nh, dm.H * dm.D)


def chan_cols(W):          # down_proj [H, F] -> [F, H]
    return W.t()


def compute_scores(config, W, res, N):
    dm = Dims(config)
    hn = 4.0 * dm.D * dm.H
    cn = 3.0 * dm.F
    sc = {k: {"heads": [], "channels": []}
          for k in ("taylor", "taylor_full", "taylor-vectorize", "wanda-sp", "magnitude")}
    signed = []
    for i in range(dm.L):
        ln = layer_names(i)
        Wq, Wo, Wg, Wu, Wd = (W[ln[k]] for k in "qougd")

        def taylor(G):
            Gq, Go, Gg, Gu, Gd = (G[ln[k]] for k in "qougd")
            h = ((head_rows(Wq * Gq / N, dm)).abs().sum(1) + head_cols(Wo * Go / N, dm).abs().sum(1)) / hn
            c = ((Wg * Gg / N).abs().sum(1) + (Wu * Gu / N).abs().sum(1)
                 + chan_cols(Wd * Gd / N).abs().sum(1)) / cn
            return h, c

        h, c = taylor(res["G_decode"])
        sc["taylor"]["heads"].append(h.tolist())
        sc["taylor"]["channels"].append(c.tolist())
        h, c = taylor(res["G_full"])
        sc["taylor_full"]["heads"].append(h.tolist())
        sc["taylor_full"]["channels"].append(c.tolist())

        G = res["G_decode"]
        Gq, Go, Gg, Gu, Gd = (G[ln[k]] for k in "qougd")
        hs = head_rows(Wq * Gq, dm).sum(1) + head_cols(Wo * Go, dm).sum(1)
        cs = (Wg * Gg).sum(1) + (Wu * Gu).sum(1) + chan_cols(Wd * Gd).sum(1)
        signed.append((hs, cs))
        sc["taylor-vectorize"]["heads"].append((hs.abs() / N / hn).tolist())
        sc["taylor-vectorize"]["channels"].append((cs.abs() / N / cn).tolist())

        xn = res["attn_sq"][i].sqrt()                       # [nh*D]
        wo_abs = Wo.abs().sum(0)                            # [nh*D]
        sc["wanda-sp"]["heads"].append((xn * wo_abs).reshape(dm.nh, dm.D).sum(1).tolist())
        sc["wanda-sp"]["channels"].append((res["act_sq"][i].sqrt() * Wd.abs().sum(0)).tolist())

        sc["magnitude"]["heads"].append(
            (head_rows(Wq ** 2, dm).sum(1) + head_cols(Wo ** 2, dm).sum(1)).sqrt().tolist())
        sc["magnitude"]["channels"].append(
            ((Wg ** 2).sum(1) + (Wu ** 2).sum(1) + (Wd ** 2).sum(0)).sqrt().tolist())
    return sc, signed


# --------------------------------------------------------------------------
# Self-checks
# --------------------------------------------------------------------------

def total_decode_loss(config, leaves, samples):
    with torch.no_grad():
        tot = 0.0
        for s in samples:
            x = torch.tensor(s["prompt_tokens"] + s["output_tokens"], dtype=torch.long)
            logits = rm.forward_logits(config, leaves, x, dtype=F64)
            tot += float(seq_loss(logits, x[1:], len(s["prompt_tokens"]), "decode"))
        return tot


def fd_check(config, leaves, samples, G, log):
    """Central differences of sum_i L_i(decode) for 2 entries of every tensor."""
    gen = torch.Generator().manual_seed(FD_SEED)
    worst = {}
    used_tokens = sorted({t for s in samples for t in s["prompt_tokens"] + s["output_tokens"]})
    for n, w in leaves.items():
        g = G[n].reshape(-1)
        idx = [int(g.abs().argmax())]
        if n == "model.embed_tokens.weight" and not config.get("tie_word_embeddings", False):
            # only rows of tokens that occur have a gradient: pick one of those at random
            row = used_tokens[int(torch.randint(0, len(used_tokens), (1,), generator=gen))]
            col = int(torch.randint(0, w.shape[1], (1,), generator=gen))
            idx.append(row * w.shape[1] + col)
        else:
            idx.append(int(torch.randint(0, g.numel(), (1,), generator=gen)))
        for k in idx:
            flat = w.data.view(-1)
            old = float(flat[k])
            flat[k] = old + FD_STEP
            lp = total_decode_loss(config, leaves, samples)
            flat[k] = old - FD_STEP
            lm = total_decode_loss(config, leaves, samples)
            flat[k] = old
            fd = (lp - lm) / (2 * FD_STEP)
            ag = float(g[k])
            err = abs(fd - ag) / max(abs(ag), 1e-3 * float(g.abs().max()), 1e-12)
            kind = kind_of(n)
            worst[kind] = max(worst.get(kind, 0.0), err)
            log.append((n, k, ag, fd, err))
    return worst


def kind_of(name):
    parts = name.split(".")
    if name.startswith("model.layers."):
        return ".".join(parts[3:])
    return name


def mask_check(config, leaves, samples):
    """Returns (ok, message)."""
    msgs = []
    ok = True
    with torch.no_grad():
        for s in samples:
            x = torch.tensor(s["prompt_tokens"] + s["output_tokens"], dtype=torch.long)
            P = len(s["prompt_tokens"])
            T = len(x)
            logits = rm.forward_logits(config, leaves, x, dtype=F64)
            base = float(seq_loss(logits, x[1:], P, "decode"))
            unchanged = changed = 0
            for t in range(T - 1):
                tg = x[1:].clone()
                tg[t] = (tg[t] + 1) % TOKEN_RANGE
                v = float(seq_loss(logits, tg, P, "decode"))
                if t + 1 < P:          # target is a prompt token: must be masked
                    if v != base:
                        ok = False
                    unchanged += 1
                else:                  # target is an output token: must count
                    if abs(v - base) < 1e-9:
                        ok = False
                    changed += 1
            msgs.append(f"{s['id']}: {unchanged} prompt targets unchanged, {changed} output targets changed")
    # Gradient w.r.t. the logits: exactly zero on masked rows.
    for s in samples:
        x = torch.tensor(s["prompt_tokens"] + s["output_tokens"], dtype=torch.long)
        P = len(s["prompt_tokens"])
        logits = rm.forward_logits(config, {k: v.detach() for k, v in leaves.items()}, x, dtype=F64)
        logits.requires_grad_(True)
        (gl,) = torch.autograd.grad(seq_loss(logits, x[1:], P, "decode"), [logits])
        if P >= 2 and float(gl[:P - 1].abs().max()) != 0.0:
            ok = False
        if float(gl[P - 1:-1].abs().min(dim=1).values.min()) == 0.0 or float(gl[-1].abs().max()) != 0.0:
            ok = False
    return ok, "; ".join(msgs)


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------

def json_text(obj):
    """JSON with every innermost list of numbers on one line; floats in repr (round-trip)."""
    def enc(o, ind):
        pad = " " * ind
        if isinstance(o, dict):
            items = [f'{pad}  {json.dumps(k)}: {enc(v, ind + 2)}' for k, v in o.items()]
            return "{\n" + ",\n".join(items) + "\n" + pad + "}"
        if isinstance(o, list) and o and isinstance(o[0], list):
            return "[\n" + ",\n".join(pad + "  " + enc(v, ind + 2) for v in o) + "\n" + pad + "]"
        return json.dumps(o)
    return enc(obj, 0) + "\n"


def compute(model_dir, samples, verify):
    config, weights = rm.load_model_dir(model_dir)
    leaves = {n: t.to(F64).requires_grad_(True) for n, t in weights.items()}
    N = len(samples)
    res = run_samples(config, leaves, samples)
    W = {n: t.detach() for n, t in leaves.items()}
    scores, signed = compute_scores(config, W, res, N)
    doc = {
        "samples": N,
        "tokens_decode_only": sum(len(s["output_tokens"]) for s in samples),
        "tokens_full": sum(len(s["prompt_tokens"]) + len(s["output_tokens"]) - 1 for s in samples),
        "mean_loss_decode_only": sum(res["loss_decode"]) / N,
        "mean_loss_full": sum(res["loss_full"]) / N,
        "losses_decode_only": res["loss_decode"],
        "losses_full": res["loss_full"],
        "scores": scores,
    }
    grads = {n: res["G_decode"][n].to(torch.float32) for n in weights}
    report = None
    if verify:
        report = {"max_logprob_diff_vs_reference_model": res["max_logit_diff"]}
        # activation form of taylor-vectorize (before abs and normalisation)
        vec_err = 0.0
        for i, (hs, cs) in enumerate(signed):
            for a, b in ((hs, res["act_head"][i]), (cs, res["act_chan"][i])):
                vec_err = max(vec_err, float(((a - b).abs() / b.abs().max()).max()))
        report["vectorize_weight_vs_activation_max_rel"] = vec_err
        log = []
        report["fd_worst_rel_err_by_kind"] = fd_check(config, leaves, samples, res["G_decode"], log)
        report["fd_entries"] = len(log)
        ok, msg = mask_check(config, leaves, samples)
        report["mask_ok"] = ok
        report["mask"] = msg
        report["decode_grad_rel_norm_vs_full"] = float(
            torch.cat([(res["G_decode"][n] - res["G_full"][n]).reshape(-1) for n in weights]).norm()
            / torch.cat([res["G_full"][n].reshape(-1) for n in weights]).norm())
    return config, weights, doc, grads, report


def verify_ok(report):
    return (report["max_logprob_diff_vs_reference_model"] == 0.0
            and report["vectorize_weight_vs_activation_max_rel"] < 1e-10
            and max(report["fd_worst_rel_err_by_kind"].values()) < 1e-5
            and report["mask_ok"])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--no-verify", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    names = args.only or list(MODELS)
    samples = make_calibration()
    failed = False
    for name in names:
        d = os.path.join(args.out, name)
        calib_path = os.path.join(d, "calibration.jsonl")
        if args.check:
            with open(calib_path) as f:
                if f.read() != calibration_text(samples):
                    print(f"{name}: calibration.jsonl differs"); failed = True
            stored = read_calibration(calib_path)
            _, weights, doc, grads, _ = compute(d, stored, verify=False)
            with open(os.path.join(d, "grad_reference.json")) as f:
                old = json.load(f)
            err = max_rel_json(old, doc)
            gold = rm.load_safetensors(os.path.join(d, "grad_reference.safetensors"))
            terr = 0.0
            if list(gold) != list(grads):
                print(f"{name}: tensor names differ"); failed = True
            else:
                for n in grads:
                    scale = max(float(grads[n].abs().max()), 1e-30)
                    terr = max(terr, float((gold[n] - grads[n]).abs().max()) / scale)
            bad = err > 1e-12 or terr > 1e-6
            failed |= bad
            print(f"{name:20s} json max rel diff {err:.2e}  tensors max rel diff {terr:.2e}  "
                  f"{'FAIL' if bad else 'ok'}")
            continue
        with open(calib_path, "w") as f:
            f.write(calibration_text(samples))
        stored = read_calibration(calib_path)
        assert stored == samples
        config, weights, doc, grads, report = compute(d, stored, verify=not args.no_verify)
        rm.save_safetensors(os.path.join(d, "grad_reference.safetensors"), grads, {"format": "pt"})
        with open(os.path.join(d, "grad_reference.json"), "w") as f:
            f.write(json_text(doc))
        print(f"{name:20s} mean loss decode-only {doc['mean_loss_decode_only']:.6f} "
              f"full {doc['mean_loss_full']:.6f}  tensors {len(grads)}")
        if report is not None:
            ok = verify_ok(report)
            failed |= not ok
            fd = report.pop("fd_worst_rel_err_by_kind")
            for k, v in report.items():
                print(f"    {k}: {v}")
            print("    fd worst rel err by tensor kind (%d entries):" % report["fd_entries"])
            for k in sorted(fd):
                print(f"        {k:40s} {fd[k]:.2e}")
            print(f"    checks {'ok' if ok else 'FAILED'}")
    return 1 if failed else 0


def max_rel_json(a, b):
    if isinstance(a, dict):
        assert set(a) == set(b), "json keys differ"
        return max([max_rel_json(a[k], b[k]) for k in a] + [0.0])
    if isinstance(a, list):
        assert len(a) == len(b), "json list lengths differ"
        return max([max_rel_json(x, y) for x, y in zip(a, b)] + [0.0])
    if isinstance(a, float) or isinstance(b, float):
        return abs(a - b) / max(abs(a), abs(b), 1e-300)
    return 0.0 if a == b else math.inf


if __name__ == "__main__":
    sys.exit(main())
