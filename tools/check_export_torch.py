#!/usr/bin/python3
"""Checks `resp export` against the independent PyTorch reference (tools/reference_model.py).

For every test fixture model (tests/fixtures/models), the C++ test binary writes a masked and a
compact export of one uniform, GQA-aligned pruning plan (test_export
--gtest_filter=ExportFixtures.Write with RESP_EXPORT_FIXTURE_DIR set). Then:

  1. want   = the reference model (float64) on the ORIGINAL weights with the plan applied
              here, independently of resp: pruned heads' q_proj rows / biases and o_proj
              columns and pruned channels' gate/up rows and down_proj columns zeroed;
  2. each export, loaded by the reference exactly as a stock HF loader would (config.json
     sizes, head h reads KV head h // group), must give `want` (float64, <= 1e-9);
  3. `resp logprobs` on each export must give `want` within the f32 engine tolerance (1e-4,
     the golden tests' bound);
  4. tensors keep the source dtype, and compact configs carry the kept sizes and head_dim.

Exit status: 0 pass, 1 fail, 77 skipped (torch not importable in this interpreter).

    /usr/bin/python3 tools/check_export_torch.py --resp build/resp --test-export build/tests/ckpt/test_export
"""

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SKIP = 77


def safetensors_dtypes(model_dir):
    """{tensor name: dtype string} from the raw headers (single file or shards)."""
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    out = {}
    for fn in files:
        with open(os.path.join(model_dir, fn), "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
        for name, info in header.items():
            if name != "__metadata__":
                out[name] = info["dtype"]
    return out


def masked_reference_weights(torch, config, weights, plan):
    """The plan applied to the original weights by zeroing, written from scratch here."""
    import reference_model as ref

    hd = ref.head_dim(config)
    n_heads = int(config["num_attention_heads"])
    d_ff = int(config["intermediate_size"])
    w = {k: v.clone().to(torch.float64) for k, v in weights.items()}
    for i, layer in enumerate(plan["layers"]):
        p = f"model.layers.{i}."
        for h in sorted(set(range(n_heads)) - set(layer["heads"])):
            rows = slice(h * hd, (h + 1) * hd)
            w[p + "self_attn.q_proj.weight"][rows, :] = 0
            if p + "self_attn.q_proj.bias" in w:
                w[p + "self_attn.q_proj.bias"][rows] = 0
            w[p + "self_attn.o_proj.weight"][:, rows] = 0
        for c in sorted(set(range(d_ff)) - set(layer["channels"])):
            w[p + "mlp.gate_proj.weight"][c, :] = 0
            w[p + "mlp.up_proj.weight"][c, :] = 0
            w[p + "mlp.down_proj.weight"][:, c] = 0
    return w


def read_inputs(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def max_abs(a, b):
    assert len(a) == len(b), (len(a), len(b))
    m = 0.0
    for x, y in zip(a, b):
        assert len(x) == len(y), (len(x), len(y))
        for u, v in zip(x, y):
            m = max(m, abs(u - v))
    return m


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--resp", required=True, help="the resp binary")
    ap.add_argument("--test-export", required=True, help="the test_export gtest binary")
    ap.add_argument("--keep", help="write the exports here (default: a temporary directory)")
    ap.add_argument("--tol", type=float, default=1e-4, help="resp (f32) vs float64 reference")
    args = ap.parse_args(argv)

    try:
        import torch  # noqa: F401
    except Exception as e:  # ImportError, or a broken install
        print(f"SKIP: torch is not importable in {sys.executable}: {e}")
        return SKIP
    sys.path.insert(0, HERE)
    import reference_model as ref

    env = dict(os.environ)
    for k, v in (("OMPI_ALLOW_RUN_AS_ROOT", "1"), ("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1"),
                 ("OMPI_MCA_pml", "ob1"), ("OMPI_MCA_btl", "self,vader"), ("OMP_NUM_THREADS", "2")):
        env.setdefault(k, v)

    with tempfile.TemporaryDirectory(prefix="resp-export-check-") as tmp:
        root = args.keep or os.path.join(tmp, "exports")
        os.makedirs(root, exist_ok=True)
        env["RESP_EXPORT_FIXTURE_DIR"] = root
        r = subprocess.run([args.test_export, "--gtest_filter=ExportFixtures.Write"], env=env,
                           capture_output=True, text=True)
        if r.returncode != 0:
            print(r.stdout + r.stderr)
            print("FAIL: test_export could not write the exports")
            return 1
        names = sorted(d for d in os.listdir(root) if os.path.isfile(os.path.join(root, d, "plan.json")))
        if not names:
            print(r.stdout + r.stderr)
            print("FAIL: no exports were written")
            return 1

        failures = 0
        for name in names:
            base = os.path.join(root, name)
            with open(os.path.join(base, "plan.json")) as f:
                plan = json.load(f)
            src = plan["source"]
            inputs = read_inputs(os.path.join(src, "input.jsonl"))
            config, weights = ref.load_model_dir(src)
            pruned = masked_reference_weights(torch, config, weights, plan)
            with torch.no_grad():
                want = [ref.token_logprobs(config, pruned, rec["tokens"], dtype=torch.float64).tolist()
                        for rec in inputs]
            src_dtypes = safetensors_dtypes(src)
            for fmt in ("masked", "compact"):
                out = os.path.join(base, fmt)
                problems = []
                ecfg, ew = ref.load_model_dir(out)
                with torch.no_grad():
                    got_ref = [ref.token_logprobs(ecfg, ew, rec["tokens"], dtype=torch.float64).tolist()
                               for rec in inputs]
                e_ref = max_abs(want, got_ref)
                if e_ref > 1e-9:
                    problems.append(f"reference on the export differs by {e_ref:.3g}")

                lp_path = os.path.join(tmp, f"{name}-{fmt}.jsonl")
                r = subprocess.run([args.resp, "logprobs", "--model", out, "--input",
                                    os.path.join(src, "input.jsonl"), "--out", lp_path, "--threads", "1"],
                                   env=env, capture_output=True, text=True)
                if r.returncode != 0:
                    problems.append("resp logprobs failed: " + r.stderr.strip())
                    e_resp = float("nan")
                else:
                    got_resp = [rec["logprobs"] for rec in read_inputs(lp_path)]
                    e_resp = max_abs(want, got_resp)
                    if not e_resp <= args.tol:
                        problems.append(f"resp logprobs differ by {e_resp:.3g} (tol {args.tol:g})")

                for tname, dt in safetensors_dtypes(out).items():
                    if src_dtypes.get(tname) != dt:
                        problems.append(f"{tname}: dtype {dt}, source {src_dtypes.get(tname)}")
                if set(safetensors_dtypes(out)) != set(src_dtypes):
                    problems.append("tensor names differ from the source")
                if fmt == "compact":
                    L0 = plan["layers"][0]
                    group = int(config["num_attention_heads"]) // ref.num_kv_heads(config)
                    kv = sorted({h // group for h in L0["heads"]})
                    expect = {"num_attention_heads": len(L0["heads"]), "num_key_value_heads": len(kv),
                              "intermediate_size": len(L0["channels"]), "head_dim": ref.head_dim(config)}
                    for k, v in expect.items():
                        if ecfg.get(k) != v:
                            problems.append(f"config {k} = {ecfg.get(k)}, expected {v}")
                    if "resp_pruning" in ecfg:
                        problems.append("compact config carries resp_pruning")
                elif ecfg != config:
                    problems.append("masked config.json differs from the source")

                status = "ok" if not problems else "FAIL"
                print(f"{status:4} {name:20} {fmt:8} reference {e_ref:.2e}  resp {e_resp:.2e}")
                for p in problems:
                    print("       " + p)
                failures += bool(problems)
        print(f"{failures} failure(s)" if failures else "all exports match the reference")
        return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
