#!/usr/bin/env python3
"""Measures RESP's premise on a model: its own reasoning traces are far more likely under it
than the gold rationales a GISP-style baseline calibrates on, and they differ from them.

    python3 tools/measure_premise.py [--model models/resp-math-reasoner]
        [--data data/synthetic-reasoning/test.jsonl] [--n 100]
        [--out docs/results-data/premise-testbed.json]

For the first N problems it builds three kinds of calibration sequences, each = the RESP
calibration prompt (the question as one user turn, thinking on) + a response:
    sampled   the model's own trace at temperature 0.6 (seed 0 and seed 1)
    greedy    the model's own greedy trace
    gold      the dataset's gold rationale (GSM8K `answer`) + the eos token, as GISP builds it
and scores every sequence with `resp logprobs`. Decode-only NLL = mean of -log p over the
response tokens (token-weighted over all sequences of a kind), which is RESP's calibration loss.
It also reports how often two samples of one prompt differ (what regeneration can change), how
often an own trace equals the gold text, and the length ratio. Writes a JSON with a one-paragraph
markdown `summary` that tools/compare_methods.py --premise quotes.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def sh(cmd):
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"measure_premise: failed: {' '.join(map(str, cmd))}\n{r.stderr.strip()}")
    return r.stdout


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resp", default=str(ROOT / "build/resp"))
    ap.add_argument("--model", default="models/resp-math-reasoner")
    ap.add_argument("--data", default="data/synthetic-reasoning/test.jsonl")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--max-new-tokens", type=int, default=900)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="docs/results-data/premise-testbed.json")
    args = ap.parse_args()
    rows = read_jsonl(ROOT / args.data)[:args.n]
    eos = json.loads((ROOT / args.model / "tokenizer_config.json").read_text())["eos_token"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        runs = {"sampled-0": ("0.6", "0"), "sampled-1": ("0.6", "1"), "greedy": ("0", "0")}
        traces = {}
        for kind, (temp, seed) in runs.items():
            out = tmp / f"{kind}.jsonl"
            sh([args.resp, "generate", "--model", args.model, "--prompts", args.data, "--task",
                "gsm8k", "--limit", str(args.n), "--temperature", temp, "--seed", seed,
                "--max-new-tokens", str(args.max_new_tokens), "--batch-size", "32", "--threads",
                str(args.threads), "--quiet", "--out", str(out)])
            traces[kind] = read_jsonl(out)
        # Gold responses through the model's own tokenizer, eos appended (GISP's sequences).
        gold_in = tmp / "gold-text.jsonl"
        gold_in.write_text("".join(json.dumps({"id": i, "text": r["answer"] + eos}) + "\n"
                                   for i, r in enumerate(rows)))
        gold_ids = {t["id"]: t["ids"] for t in (json.loads(line) for line in sh(
            [args.resp, "tokenize", "--model", args.model, "--input", str(gold_in)]).splitlines()
            if line.strip())}
        seqs, spans = [], []  # spans: (kind, index, prompt_len)
        for kind, ts in traces.items():
            for i, t in enumerate(ts):
                seqs.append(t["prompt_tokens"] + t["output_tokens"])
                spans.append((kind, i, len(t["prompt_tokens"])))
        for i, t in enumerate(traces["greedy"]):
            seqs.append(t["prompt_tokens"] + gold_ids[i])
            spans.append(("gold", i, len(t["prompt_tokens"])))
        lp_in = tmp / "seqs.jsonl"
        lp_in.write_text("".join(json.dumps({"id": k, "tokens": s}) + "\n"
                                 for k, s in enumerate(seqs)))
        lp_out = tmp / "lp.jsonl"
        sh([args.resp, "logprobs", "--model", args.model, "--input", str(lp_in), "--threads",
            str(args.threads), "--out", str(lp_out)])
        logprobs = {r["id"]: r["logprobs"] for r in read_jsonl(lp_out)}
    stats = {}
    for k, (kind, i, plen) in enumerate(spans):
        resp_lp = logprobs[k][plen - 1:]  # entry t predicts token t+1: response tokens only
        s = stats.setdefault(kind, {"nll_sum": 0.0, "tokens": 0, "seqs": 0})
        s["nll_sum"] -= sum(resp_lp)
        s["tokens"] += len(resp_lp)
        s["seqs"] += 1
    for s in stats.values():
        s["nll_per_token"] = s["nll_sum"] / s["tokens"]
        s["mean_response_tokens"] = s["tokens"] / s["seqs"]
    gold_text = [r["answer"] for r in rows]
    equal_gold = sum(t["text"].strip() == g.strip() or g.split("####")[0].strip() in t["text"]
                     for kind in traces for t, g in zip(traces[kind], gold_text))
    differ = sum(a["output_tokens"] != b["output_tokens"]
                 for a, b in zip(traces["sampled-0"], traces["sampled-1"])) / len(rows)
    truncated = sum(t["finish_reason"] == "length" for t in traces["sampled-0"]) / len(rows)
    sampled_nll = (stats["sampled-0"]["nll_sum"] + stats["sampled-1"]["nll_sum"]) / (
        stats["sampled-0"]["tokens"] + stats["sampled-1"]["tokens"])
    ratio = stats["gold"]["nll_per_token"] / sampled_nll
    length_ratio = stats["sampled-0"]["mean_response_tokens"] / stats["gold"][
        "mean_response_tokens"]
    summary = (
        f"On the first {len(rows)} held-out problems, the decode-only NLL (RESP's calibration "
        f"loss, nats per response token) of the model's own traces sampled at temperature 0.6 "
        f"is {sampled_nll:.3f} (greedy traces: {stats['greedy']['nll_per_token']:.3f}); of the "
        f"gold rationales GISP calibrates on it is {stats['gold']['nll_per_token']:.3f}, "
        f"{ratio:.0f}× higher. Own traces are {length_ratio:.1f}× the gold length "
        f"({stats['sampled-0']['mean_response_tokens']:.0f} vs "
        f"{stats['gold']['mean_response_tokens']:.0f} tokens), {equal_gold} of {3 * len(rows)} "
        f"own traces contain the gold text, and two samples of the same prompt differ "
        f"for {differ * 100:.0f}% of prompts, so regeneration has something to change. "
        f"{truncated * 100:.0f}% of sampled traces hit the {args.max_new_tokens}-token limit.")
    result = {"model": args.model, "data": args.data, "n": len(rows), "kinds": stats,
              "sampled_nll_per_token": sampled_nll, "gold_over_sampled": ratio,
              "length_ratio": length_ratio, "own_traces_containing_gold": equal_gold,
              "sampled_pairs_differ": differ, "sampled_truncated": truncated,
              "summary": summary}
    Path(ROOT / args.out).parent.mkdir(parents=True, exist_ok=True)
    (ROOT / args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(summary)


if __name__ == "__main__":
    main()
