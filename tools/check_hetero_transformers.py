#!/usr/bin/env python3
"""Checks that stock transformers loads `resp export --format hetero` (trust_remote_code=True).

For every test fixture model (tests/fixtures/models), the C++ test binary writes a masked and a
hetero export of one plan (test_export --gtest_filter=ExportFixtures.WriteHetero with
RESP_EXPORT_FIXTURE_DIR set). The plan gives every layer its own widths and has a layer whose
kept query heads are not GQA-aligned, a layer that keeps no heads and, in models of three or more
layers, one that keeps no channels. Then, for each export:

  1. AutoModelForCausalLM.from_pretrained(hetero, trust_remote_code=True) builds the model from
     the export's own modeling_resp_pruned.py, with each layer's q/k/v/o and MLP weights at the
     kept sizes (no size mismatch, nothing newly initialised);
  2. its log-probs (eager and sdpa attention) equal `resp logprobs` on the same export (<= 1e-4,
     the f32 engine tolerance) and stock transformers on the masked export, without remote code
     (<= 1e-5, two f32 torch runs);
  3. greedy generate() of a few tokens gives the tokens of `resp generate --temperature 0` and of
     the masked export in stock transformers.

Exit status: 0 pass, 1 fail, 77 skipped (torch or transformers not importable), unless
RESP_TRANSFORMERS_TEST_REQUIRED=1 (CI), which turns the skip into a failure.

    python3 tools/check_hetero_transformers.py --resp build/resp --test-export build/tests/ckpt/test_export
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
SKIP = 77
# A byte-level tokenizer for the fixtures' 263-token vocabulary: `resp generate` takes text.
TOKENIZER_FROM = os.path.join(HERE, "..", "tests", "fixtures", "models", "qwen3-tiny-demo")
PROMPTS = ["hello world", "The quick brown fox", "12+34="]
NEW_TOKENS = 8


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def max_abs(a, b):
    if len(a) != len(b) or any(len(x) != len(y) for x, y in zip(a, b)):
        return float("inf")
    return max((abs(u - v) for x, y in zip(a, b) for u, v in zip(x, y)), default=0.0)


def without_eos(tokens, eos):
    """Tokens up to and excluding the first end-of-sequence token."""
    for i, t in enumerate(tokens):
        if t in eos:
            return tokens[:i]
    return tokens


class Transformers:
    """The few transformers calls the check needs, across 4.x and 5.x keyword names."""

    def __init__(self):
        import torch
        import transformers

        self.torch = torch
        self.version = transformers.__version__
        transformers.logging.set_verbosity_error()  # no progress bars and notices per load
        transformers.logging.disable_progress_bar()
        # 4.x warns on every load that the fixtures' generation_config.json samples.
        warnings.filterwarnings("ignore", category=UserWarning, module="transformers")
        self.auto = transformers.AutoModelForCausalLM
        self.generation_config = transformers.GenerationConfig
        major = int(self.version.split(".")[0])
        self.dtype_kw = "dtype" if major >= 5 else "torch_dtype"

    def load(self, path, remote, attn):
        """The model; ValueError when a weight is missing, unexpected or of another shape."""
        kwargs = {self.dtype_kw: self.torch.float32, "attn_implementation": attn,
                  "output_loading_info": True}
        if remote:
            kwargs["trust_remote_code"] = True
        model, info = self.auto.from_pretrained(path, **kwargs)
        bad = {k: v for k, v in info.items()
               if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
        if bad:
            raise ValueError(f"{path}: {bad}")
        return model.eval()

    def logprobs(self, model, seqs):
        torch = self.torch
        out = []
        with torch.no_grad():
            for tokens in seqs:
                if len(tokens) < 2:
                    out.append([])
                    continue
                ids = torch.tensor([tokens])
                logp = torch.log_softmax(model(ids).logits[0].double(), dim=-1)
                out.append(logp[:-1].gather(1, ids[0, 1:, None])[:, 0].tolist())
        return out

    def greedy(self, model, prompt, n, eos):
        torch = self.torch
        with torch.no_grad():
            # A config of its own: the fixtures' generation_config.json holds sampling settings.
            greedy = self.generation_config(do_sample=False, max_new_tokens=n, eos_token_id=eos,
                                            pad_token_id=eos[0])
            out = model.generate(torch.tensor([prompt]), generation_config=greedy)
        return without_eos(out[0, len(prompt):].tolist(), eos)


def check_shapes(model, hetero_dir):
    """Every layer's projections have the kept sizes of config.json's resp_pruning."""
    with open(os.path.join(hetero_dir, "config.json")) as f:
        cfg = json.load(f)
    d = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    problems = []
    for i, (layer, kept) in enumerate(zip(model.model.layers, cfg["resp_pruning"]["layers"])):
        a, m = layer.self_attn, layer.mlp
        want = {"q_proj": len(kept["heads"]) * d, "k_proj": len(kept["kv_heads"]) * d,
                "v_proj": len(kept["kv_heads"]) * d, "gate_proj": len(kept["channels"]),
                "up_proj": len(kept["channels"])}
        got = {k: getattr(a if k.endswith(("q_proj", "k_proj", "v_proj")) else m, k).weight.shape[0]
               for k in want}
        got_in = {"o_proj": a.o_proj.weight.shape[1], "down_proj": m.down_proj.weight.shape[1]}
        want_in = {"o_proj": want["q_proj"], "down_proj": want["gate_proj"]}
        if got != want or got_in != want_in:
            problems.append(f"layer {i}: module sizes {got} {got_in}, expected {want} {want_in}")
    return problems


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--resp", required=True, help="the resp binary")
    ap.add_argument("--test-export", required=True, help="the test_export gtest binary")
    ap.add_argument("--keep", help="write the exports here (default: a temporary directory)")
    ap.add_argument("--tol", type=float, default=1e-4, help="transformers vs resp (f32 engine)")
    args = ap.parse_args(argv)
    required = os.environ.get("RESP_TRANSFORMERS_TEST_REQUIRED") == "1"

    with tempfile.TemporaryDirectory(prefix="resp-hetero-check-") as tmp:
        # Nothing from the network, and transformers' copies of the remote code stay in tmp.
        os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
                          HF_MODULES_CACHE=os.path.join(tmp, "hf_modules"))
        try:
            tf = Transformers()
        except Exception as e:  # ImportError, or a broken install
            print(f"{'FAIL' if required else 'SKIP'}: torch/transformers not importable in "
                  f"{sys.executable}: {e}")
            return 1 if required else SKIP
        print(f"transformers {tf.version}, torch {tf.torch.__version__}")

        env = dict(os.environ)
        for k, v in (("OMPI_ALLOW_RUN_AS_ROOT", "1"), ("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1"),
                     ("OMPI_MCA_pml", "ob1"), ("OMPI_MCA_btl", "self,vader"), ("OMP_NUM_THREADS", "2")):
            env.setdefault(k, v)
        root = args.keep or os.path.join(tmp, "exports")
        os.makedirs(root, exist_ok=True)
        env["RESP_EXPORT_FIXTURE_DIR"] = root
        r = subprocess.run([args.test_export, "--gtest_filter=ExportFixtures.WriteHetero"], env=env,
                           capture_output=True, text=True)
        names = sorted(d for d in os.listdir(root) if os.path.isfile(os.path.join(root, d, "plan.json")))
        if r.returncode != 0 or not names:
            print(r.stdout + r.stderr)
            print("FAIL: test_export could not write the exports")
            return 1

        prompts_path = os.path.join(tmp, "prompts.jsonl")
        with open(prompts_path, "w") as f:
            for i, p in enumerate(PROMPTS):
                f.write(json.dumps({"id": i, "prompt": p}) + "\n")

        failures = 0
        for name in names:
            base = os.path.join(root, name)
            hetero, masked = os.path.join(base, "hetero"), os.path.join(base, "masked")
            with open(os.path.join(base, "plan.json")) as f:
                src = json.load(f)["source"]
            seqs = [rec["tokens"] for rec in read_jsonl(os.path.join(src, "input.jsonl"))]
            with open(os.path.join(hetero, "config.json")) as f:
                eos = json.load(f)["eos_token_id"]
            eos = eos if isinstance(eos, list) else [eos]
            problems = []

            lp_path = os.path.join(tmp, f"{name}-lp.jsonl")
            r = subprocess.run([args.resp, "logprobs", "--model", hetero, "--input",
                                os.path.join(src, "input.jsonl"), "--out", lp_path, "--threads", "1"],
                               env=env, capture_output=True, text=True)
            if r.returncode != 0:
                problems.append("resp logprobs failed: " + r.stderr.strip())
                resp_lp = None
            else:
                resp_lp = [rec["logprobs"] for rec in read_jsonl(lp_path)]

            errs = {}
            for attn in ("eager", "sdpa"):
                try:
                    model = tf.load(hetero, remote=True, attn=attn)
                except Exception as e:
                    problems.append(f"hetero ({attn}) does not load: {type(e).__name__}: {e}")
                    continue
                if type(model).__module__.startswith("transformers."):
                    problems.append(f"hetero loaded as stock {type(model).__name__}")
                if attn == "eager":
                    problems += check_shapes(model, hetero)
                lp = tf.logprobs(model, seqs)
                stock = tf.load(masked, remote=False, attn=attn)
                if not type(stock).__module__.startswith("transformers."):
                    problems.append(f"the masked export loaded as {type(stock).__name__} after hetero")
                ref = tf.logprobs(stock, seqs)
                errs[f"{attn} vs masked"] = e = max_abs(lp, ref)
                if not e <= 1e-5:
                    problems.append(f"{attn}: log-probs differ from the masked export by {e:.3g}")
                if resp_lp is not None:
                    errs[f"{attn} vs resp"] = e = max_abs(lp, resp_lp)
                    if not e <= args.tol:
                        problems.append(f"{attn}: log-probs differ from resp by {e:.3g} (tol {args.tol:g})")

            # Greedy decoding: resp needs a tokenizer for its text prompts.
            for f in ("tokenizer.json", "tokenizer_config.json"):
                shutil.copy(os.path.join(TOKENIZER_FROM, f), hetero)
            gen_path = os.path.join(tmp, f"{name}-gen.jsonl")
            r = subprocess.run([args.resp, "generate", "--model", hetero, "--prompts", prompts_path,
                                "--out", gen_path, "--temperature", "0", "--max-new-tokens",
                                str(NEW_TOKENS), "--threads", "1", "--device", "cpu", "--quiet"],
                               env=env, capture_output=True, text=True)
            n_gen = 0
            if r.returncode != 0:
                problems.append("resp generate failed: " + r.stderr.strip())
            else:
                model = tf.load(hetero, remote=True, attn="sdpa")
                stock = tf.load(masked, remote=False, attn="sdpa")
                for rec in read_jsonl(gen_path):
                    want = without_eos(rec["output_tokens"], eos)
                    got = tf.greedy(model, rec["prompt_tokens"], NEW_TOKENS, eos)
                    got_masked = tf.greedy(stock, rec["prompt_tokens"], NEW_TOKENS, eos)
                    n_gen += len(got)
                    if got != want or got_masked != want:
                        problems.append(f"greedy tokens for {rec['prompt_tokens']}: transformers {got}, "
                                        f"masked {got_masked}, resp {want}")

            status = "ok" if not problems else "FAIL"
            print(f"{status:4} {name:18} " + "  ".join(f"{k} {v:.1e}" for k, v in errs.items()) +
                  f"  greedy {n_gen} tokens")
            for p in problems:
                print("       " + p)
            failures += bool(problems)
        print(f"{len(names) - failures} passed, {failures} failed")
        return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
