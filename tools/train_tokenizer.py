#!/usr/bin/env python3
"""Trains the byte-level BPE tokenizer of the embedded default model on a JSONL corpus.

    python3 tools/train_tokenizer.py --data data/synthetic-math/train.jsonl \
        --vocab-size 1024 --out models/resp-math-tiny

Reads the string fields `question`, `answer` and (where present) `thinking` of every row (GSM8K
format, plus the testbed's model-style traces) and the fixed
phrases the model is trained to write ("The answer is N."), and writes tokenizer.json and
tokenizer_config.json in the Qwen3 layout: ids 0..255 are the bytes (GPT-2 byte-to-unicode
characters), then the learned merges in rank order, then the added tokens <|endoftext|>,
<|im_end|>, <|im_start|>, <think>, </think>. The pre-tokenizer is Qwen2's split regex (digits one
by one) followed by ByteLevel, and the chat template is Qwen3's, so the model takes the same
chat/thinking path as a real Qwen3.

Training is plain BPE: count adjacent symbol pairs over the pre-tokenized words weighted by word
frequency, merge the most frequent pair (ties: the lexicographically smallest pair), repeat until
the vocabulary is full or no pair occurs `--min-frequency` times. Deterministic: the same corpus
gives the same file. Only the standard library is used; the corpus must be ASCII (the regex
below is Qwen2's restricted to ASCII letters and digits, which is exact on ASCII text).
"""

import argparse
import collections
import json
import re
from pathlib import Path

from make_test_tokenizer import bytes_to_unicode, tokenizer_config, tokenizer_json

ROOT = Path(__file__).resolve().parent.parent

# Qwen2's pre-tokenizer regex with \p{L} -> [A-Za-z] and \p{N} -> [0-9].
ASCII_SPLIT = re.compile(r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\nA-Za-z0-9]?[A-Za-z]+|[0-9]|"
                         r" ?[^\sA-Za-z0-9]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

ADDED_NAMES = [("<|endoftext|>", True), ("<|im_end|>", True), ("<|im_start|>", True),
               ("<think>", False), ("</think>", False)]


def corpus_texts(path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            row = json.loads(line)
            for key in ("question", "answer", "thinking"):
                if isinstance(row.get(key), str):
                    yield row[key]
            ans = row.get("answer", "")
            if "####" in ans:
                yield "\n\nThe answer is " + ans.split("####")[-1].strip() + "."
    # The chat scaffolding around turns (control tokens are added tokens, not BPE).
    yield "user\n"
    yield "assistant\n"
    yield "system\n"


def train(texts, vocab_size, n_added, min_frequency):
    b2u = bytes_to_unicode()
    words = collections.Counter()
    for text in texts:
        if not text.isascii():
            raise SystemExit("train_tokenizer: the corpus must be ASCII")
        for piece in ASCII_SPLIT.findall(text):
            words["".join(b2u[b] for b in piece.encode("utf-8"))] += 1
    # Each word as a tuple of symbols; merges rewrite these in place.
    split = {w: tuple(w) for w in words}
    vocab = {b2u[b]: b for b in range(256)}
    merges = []
    budget = vocab_size - 256 - n_added
    while len(merges) < budget:
        pairs = collections.Counter()
        for w, syms in split.items():
            for a, b in zip(syms, syms[1:]):
                pairs[(a, b)] += words[w]
        if not pairs:
            break
        best = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        if best[1] < min_frequency:
            break
        (a, b), _ = best
        merged = a + b
        merges.append(f"{a} {b}")
        vocab[merged] = len(vocab)
        for w, syms in split.items():
            if len(syms) < 2:
                continue
            out, i = [], 0
            while i < len(syms):
                if i + 1 < len(syms) and syms[i] == a and syms[i + 1] == b:
                    out.append(merged)
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            split[w] = tuple(out)
    return vocab, merges


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="JSONL corpus (GSM8K rows)")
    ap.add_argument("--vocab-size", type=int, default=1024,
                    help="upper bound on bytes + merges + added tokens")
    ap.add_argument("--min-frequency", type=int, default=2)
    ap.add_argument("--template-from", type=Path,
                    default=ROOT / "tests/fixtures/models/qwen3-tiny-demo/tokenizer_config.json",
                    help="a tokenizer_config.json holding Qwen3's chat template")
    ap.add_argument("--model-max-length", type=int, default=1024)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    vocab, merges = train(corpus_texts(args.data), args.vocab_size, len(ADDED_NAMES),
                          args.min_frequency)
    added = [(len(vocab) + i, name, special) for i, (name, special) in enumerate(ADDED_NAMES)]
    template = json.loads(args.template_from.read_text())["chat_template"]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tokenizer.json").write_text(
        json.dumps(tokenizer_json(vocab, merges, added), ensure_ascii=False, indent=1) + "\n",
        encoding="utf-8")
    (args.out / "tokenizer_config.json").write_text(
        json.dumps(tokenizer_config(template, added, args.model_max_length), ensure_ascii=False,
                   indent=2) + "\n", encoding="utf-8")
    total = len(vocab) + len(added)
    print(f"wrote {args.out}/tokenizer.json: {len(merges)} merges, {total} tokens "
          f"(<|endoftext|> = {added[0][0]}, <|im_end|> = {added[1][0]})")


if __name__ == "__main__":
    main()
