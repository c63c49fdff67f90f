#!/usr/bin/env python3
"""Writes a tiny Qwen3-style tokenizer for the fixture model tests/fixtures/models/qwen3-tiny-demo.

The model has vocab_size 263, bos 256 and eos 257. The tokenizer is byte-level BPE with no merges:
ids 0..255 are the 256 bytes (as GPT-2's byte-to-unicode characters, id == byte value), and
ids 256..262 are added tokens, so every text encodes to one token per UTF-8 byte (plus the control
tokens, matched whole). The pre-tokenizer (Qwen2 Split regex + ByteLevel), the decoder (ByteLevel)
and the chat template are Qwen3's, so the tokenizer layer detects the chat format as qwen3 and the
whole generate/eval path (chat template, thinking, stop strings, detokenizing) runs end to end on
the fixture model.

    python3 tools/make_test_tokenizer.py [--out tests/fixtures/models/qwen3-tiny-demo]
            [--template-from ../shared/tokenizers/qwen3/tokenizer_config.json]

The chat template is Qwen3's (Apache-2.0), copied from Qwen/Qwen3-8B's tokenizer_config.json. When
that file is not at hand the template stored in the existing output is reused, so reruns are
byte-identical.
"""

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
               r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

# (id, content, special) — Qwen3's flags: the chat control tokens are special, <think> is not.
ADDED = [
    (256, "<|endoftext|>", True),
    (257, "<|im_end|>", True),
    (258, "<|im_start|>", True),
    (259, "<think>", False),
    (260, "</think>", False),
    (261, "<|fim_pad|>", False),
    (262, "<|pad|>", True),
]


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable unicode character mapping."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def tokenizer_json(vocab=None, merges=(), added=ADDED):
    """tokenizer.json for a byte-level BPE: `vocab` maps byte-level strings to ids (default:
    the 256 bytes), `merges` lists "a b" pairs in rank order, `added` the added tokens."""
    b2u = bytes_to_unicode()
    if vocab is None:
        vocab = {b2u[b]: b for b in range(256)}
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                  "use_regex": False}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [{"id": i, "content": c, "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": s}
                         for i, c, s in added],
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": QWEN2_REGEX}, "behavior": "Isolated",
             "invert": False},
            byte_level]},
        "post_processor": byte_level,
        "decoder": byte_level,
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": "", "end_of_word_suffix": "", "fuse_unk": False,
                  "byte_fallback": False, "ignore_merges": False, "vocab": vocab, "merges": list(merges)},
    }


def tokenizer_config(template, added=ADDED, model_max_length=512):
    return {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": {str(i): {"content": c, "lstrip": False, "normalized": False,
                                          "rstrip": False, "single_word": False, "special": s}
                                 for i, c, s in added},
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "bos_token": None,
        "chat_template": template,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": model_max_length,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "tests/fixtures/models/qwen3-tiny-demo")
    ap.add_argument("--template-from", type=Path,
                    default=ROOT.parent / "shared/tokenizers/qwen3/tokenizer_config.json")
    args = ap.parse_args()
    existing = args.out / "tokenizer_config.json"
    if args.template_from.exists():
        template = json.loads(args.template_from.read_text())["chat_template"]
    elif existing.exists():
        template = json.loads(existing.read_text())["chat_template"]
    else:
        raise SystemExit(f"no Qwen3 chat template: {args.template_from} is missing")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tokenizer.json").write_text(
        json.dumps(tokenizer_json(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    (args.out / "tokenizer_config.json").write_text(
        json.dumps(tokenizer_config(template), ensure_ascii=False, indent=2) + "\n",
        encoding="utf-8")
    print(f"wrote {args.out}/tokenizer.json and tokenizer_config.json")


if __name__ == "__main__":
    main()
