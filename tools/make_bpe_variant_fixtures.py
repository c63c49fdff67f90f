#!/usr/bin/env python3
"""Generates the byte-level BPE variant fixtures in tests/fixtures/tokenizer/ with Hugging Face's
`tokenizers` (the reference implementation):

    pip install tokenizers transformers
    python3 tools/make_bpe_variant_fixtures.py [--smollm2 ../smollm2/hf] [--out tests/fixtures/tokenizer]

It copies SmolLM2-135M-Instruct's tokenizer (Apache-2.0; the tokenizer.json that transformers
writes when it converts the GGUF file, whose vocabulary lacks 21 byte tokens) to smollm2/, and
writes bpe_variants.json: for a list of texts, the ids (and decoded text) that `tokenizers` gives
for SmolLM2's tokenizer and for variants of it with other pre-tokenizers, normalizers, model
options and post-processors, and for small synthetic tokenizers that exercise the rest of the BPE
model (unk_token, fuse_unk, byte_fallback, continuing_subword_prefix, end_of_word_suffix, repeated
merges). The output is deterministic (seeded random strings).
"""

import argparse
import copy
import json
import random
import shutil
import sys
from pathlib import Path

import tokenizers
from tokenizers import Tokenizer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from make_tokenizer_fixtures import (CORPUS, GPT2_REGEX, LLAMA3_REGEX,  # noqa: E402
                                     QWEN2_REGEX, random_strings)

# Texts with the bytes SmolLM2's vocabulary lacks (4, 6, 19, 20, 22, 29; 0xC0, 0xC1 and 0xF5-0xFF,
# which UTF-8 never uses; the lead bytes 0xF1 and 0xF2 of planes 4-11), characters whose lead
# bytes it has (emoji: 0xF0, tags: 0xF3, plane 16: 0xF4), digits, punctuation and case.
EXTRA = [
    "ctrl\x04char",
    "a\x06b \x13\x14\x16\x1d end",
    "\x04",
    "\x04\x04\x06x\x04",
    "tags: \U000E0001\U000E0067 flag 🏴\U000E0067\U000E0062\U000E0073\U000E0063\U000E0074\U000E007F!",
    "private \U000F0000\U000F0001 and \U0010FFFF, \U00040000 plane 4, emoji 😀🤗",
    "variation e\U000E0100 selector",
    "digits 12345 and 3.14, x2y 1,000 ٣٤ ２０",
    "bytes that stand for digits after ByteLevel: ² β ¹ ³ ¼ ½ ¾ (β is CE B2)",
    "İstanbul ΣΑΣ ß ẞ DŽ ǅ Ω K Å MiXeD mixed MIXED",
    "ﬁ ① ｱ ㌀ ½ ℌ x\u00a0y e\u0301",
    "   padded   \n",
    "tab\tsep\u3000ideo\u2009thin\u200bzw",
    "a!!b,c.$d+ (x)¿y «q» ‹r› — dash … ellipsis",
    "snake_case x_y __init__ kebab-case",
    "<|im_start|>user\nHi\x04<|im_end|>\n<|endoftext|>",
    "hello world",
    " hello",
    "Ġ and Ċ are letters too",
]


def bytes_to_unicode():
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) +
          list(range(ord("®"), ord("ÿ") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


B2U = bytes_to_unicode()


def byte_level(pre=False, regex=True):
    return {"type": "ByteLevel", "add_prefix_space": pre, "trim_offsets": True,
            "use_regex": regex}


def split(pattern, behavior="Isolated", invert=False, literal=False):
    return {"type": "Split", "pattern": {"String" if literal else "Regex": pattern},
            "behavior": behavior, "invert": invert}


def seq(*steps):
    return {"type": "Sequence", "pretokenizers": list(steps)}


def nseq(*steps):
    return {"type": "Sequence", "normalizers": list(steps)}


def template(single_pre, single_post):
    specials = {t: {"id": t, "ids": [i], "tokens": [t]} for t, i in single_pre + single_post}
    single = ([{"SpecialToken": {"id": t, "type_id": 0}} for t, _ in single_pre] +
              [{"Sequence": {"id": "A", "type_id": 0}}] +
              [{"SpecialToken": {"id": t, "type_id": 0}} for t, _ in single_post])
    pair = single + [{"Sequence": {"id": "B", "type_id": 1}}]
    return {"type": "TemplateProcessing", "single": single, "pair": pair,
            "special_tokens": specials}


# Variants of SmolLM2's tokenizer.json: top-level fields replaced, "model" fields merged.
SMOLLM2_VARIANTS = [
    ("smollm2", {}),
    # The pre-tokenizer of the tokenizer.json SmolLM2 ships on the Hub (StarCoder's).
    ("digits_individual+bytelevel", {"pre_tokenizer": seq(
        {"type": "Digits", "individual_digits": True}, byte_level())}),
    ("digits_contiguous+bytelevel", {"pre_tokenizer": seq(
        {"type": "Digits", "individual_digits": False}, byte_level())}),
    ("bytelevel_prefix_space", {"pre_tokenizer": byte_level(pre=True)}),
    ("bytelevel_no_regex", {"pre_tokenizer": byte_level(regex=False)}),
    ("split_qwen2+bytelevel", {"pre_tokenizer": seq(split(QWEN2_REGEX),
                                                    byte_level(regex=False))}),
    ("split_llama3+digits+bytelevel_prefix_space", {"pre_tokenizer": seq(
        split(LLAMA3_REGEX), {"type": "Digits", "individual_digits": True},
        byte_level(pre=True, regex=False))}),
    ("split_llama3_merged_with_previous+bytelevel", {"pre_tokenizer": seq(
        split(LLAMA3_REGEX, "MergedWithPrevious"), byte_level(regex=False))}),
    ("split_gpt2_contiguous+bytelevel", {"pre_tokenizer": seq(
        split(GPT2_REGEX, "Contiguous"), byte_level(regex=False))}),
    ("split_qwen2_inverted_removed+bytelevel", {"pre_tokenizer": seq(
        split(QWEN2_REGEX, "Removed", invert=True), byte_level(regex=False))}),
    ("split_string_space_merged_with_next+bytelevel", {"pre_tokenizer": seq(
        split(" ", "MergedWithNext", literal=True), byte_level(regex=False))}),
    ("punctuation_contiguous+bytelevel+digits", {"pre_tokenizer": seq(
        {"type": "Punctuation", "behavior": "Contiguous"}, byte_level(),
        {"type": "Digits", "individual_digits": False})}),
    ("punctuation_removed+bytelevel", {"pre_tokenizer": seq(
        {"type": "Punctuation", "behavior": "Removed"}, byte_level())}),
    ("whitespace+bytelevel", {"pre_tokenizer": seq({"type": "Whitespace"},
                                                   byte_level(regex=False))}),
    ("whitespace_split+bytelevel", {"pre_tokenizer": seq({"type": "WhitespaceSplit"},
                                                         byte_level())}),
    # Steps after ByteLevel see the byte alphabet ('Ġ' is a letter, byte 0xB2 is '²').
    ("bytelevel+punctuation_merged_with_previous", {"pre_tokenizer": seq(
        byte_level(), {"type": "Punctuation", "behavior": "MergedWithPrevious"})}),
    ("bytelevel+digits_individual", {"pre_tokenizer": seq(
        byte_level(), {"type": "Digits", "individual_digits": True})}),
    ("bytelevel+split_string_G_merged_with_next", {"pre_tokenizer": seq(
        byte_level(), split("Ġ", "MergedWithNext", literal=True))}),
    ("bytelevel+whitespace", {"pre_tokenizer": seq(byte_level(), {"type": "Whitespace"})}),
    # Normalizers.
    ("nfc", {"normalizer": {"type": "NFC"}}),
    ("nfkc", {"normalizer": {"type": "NFKC"}}),
    ("nfd+lowercase", {"normalizer": nseq({"type": "NFD"}, {"type": "Lowercase"})}),
    ("nfkd", {"normalizer": {"type": "NFKD"}}),
    ("lowercase+normalized_added", {
        "normalizer": {"type": "Lowercase"},
        "added_tokens_extra": [{"id": 49152, "content": "MiXeD", "single_word": False,
                                "lstrip": False, "rstrip": False, "normalized": True,
                                "special": False}]}),
    ("prepend+replace", {"normalizer": nseq(
        {"type": "Prepend", "prepend": "▁"},
        {"type": "Replace", "pattern": {"String": " "}, "content": "▁"})}),
    ("strip+replace_newline", {"normalizer": nseq(
        {"type": "Strip", "strip_left": True, "strip_right": True},
        {"type": "Replace", "pattern": {"String": "\n"}, "content": " "})}),
    ("strip_right", {"normalizer": {"type": "Strip", "strip_left": False,
                                    "strip_right": True}}),
    # Model options.
    ("ignore_merges", {"model": {"ignore_merges": True}}),
    ("merges_as_strings", {"merges_as_strings": True}),
    ("unk_endoftext", {"model": {"unk_token": "<|endoftext|>"}}),
    ("unk_endoftext_fused", {"model": {"unk_token": "<|endoftext|>", "fuse_unk": True}}),
    ("byte_fallback_without_byte_tokens", {"model": {"byte_fallback": True}}),
    # Post-processors (ids with add_special_tokens=True in "ids_special").
    ("template_bos_eos", {"post_processor": template([("<|im_start|>", 1)],
                                                     [("<|im_end|>", 2)])}),
    ("sequence_bytelevel_template", {"post_processor": {
        "type": "Sequence", "processors": [
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
             "use_regex": True},
            template([("<|endoftext|>", 0)], [])]}}),
    ("roberta", {"post_processor": {"type": "RobertaProcessing", "sep": ["<|im_end|>", 2],
                                    "cls": ["<|im_start|>", 1], "trim_offsets": True,
                                    "add_prefix_space": False}}),
    ("bert", {"post_processor": {"type": "BertProcessing", "sep": ["<|im_end|>", 2],
                                 "cls": ["<|im_start|>", 1]}}),
]


def apply_variant(base, patch):
    tj = copy.deepcopy(base)
    for k, v in patch.items():
        if k == "model":
            tj["model"].update(v)
        elif k == "merges_as_strings":
            tj["model"]["merges"] = [f"{a} {b}" for a, b in tj["model"]["merges"]]
        elif k == "added_tokens_extra":
            tj["added_tokens"] = tj["added_tokens"] + v
        else:
            tj[k] = v
    return tj


def synthetic_base(missing=(), extra=(), merges=(), **model):
    """A byte-level BPE: the byte alphabet (without `missing` bytes) plus `extra` tokens."""
    vocab = {B2U[b]: b for b in range(256) if b not in missing}
    for tok in extra:
        if tok not in vocab:
            vocab[tok] = 256 + len(vocab)
    m = {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
         "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
         "ignore_merges": False, "vocab": vocab, "merges": [list(p) for p in merges]}
    m.update(model)
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [],
            "normalizer": None, "pre_tokenizer": byte_level(), "post_processor": None,
            "decoder": byte_level(pre=True), "model": m}


def merged_vocab(merges, prefix=""):
    """The tokens the merges need (a + b without the prefix's length)."""
    out = []
    for a, b in merges:
        out += [a, b, a + b[len(prefix):]]
    return out


def synthetic_variants():
    out = []
    plain_merges = [("a", "b"), ("ab", "c"), ("Ġ", "a"), ("Ġa", "b"), ("e", "l"), ("el", "l"),
                    ("h", "ell"), ("l", "o"), ("hell", "o"), ("Ġ", "w"), ("o", "r"),
                    ("Ġw", "or"), ("l", "d"), ("Ġwor", "ld")]
    # continuing_subword_prefix: every non-first character is looked up as "##c".
    pre_merges = [("a", "##b"), ("ab", "##c"), ("##b", "##c"), ("Ġ", "##a"), ("Ġa", "##b"),
                  ("h", "##e"), ("he", "##l"), ("hel", "##l"), ("hell", "##o"),
                  ("##l", "##o"), ("Ġ", "##w"), ("Ġw", "##o")]
    pre_extra = ["##" + B2U[b] for b in range(256)] + merged_vocab(pre_merges, "##")
    out.append(("prefix", synthetic_base(extra=pre_extra, merges=pre_merges,
                                         continuing_subword_prefix="##")))
    # A vocabulary without the "##" forms of some characters: they are dropped.
    pre_partial = [t for t in pre_extra if t not in ("##c", "##d", "##" + B2U[0xA4])]
    partial_merges = [m for m in pre_merges if "##c" not in m]
    out.append(("prefix_partial", synthetic_base(extra=pre_partial, merges=partial_merges,
                                                 continuing_subword_prefix="##")))
    # end_of_word_suffix: the last character of each pre-token is looked up as "c</w>".
    suf_merges = [("a", "b</w>"), ("a", "b"), ("ab", "c</w>"), ("Ġ", "a</w>"), ("Ġ", "a"),
                  ("l", "o</w>"), ("l", "l"), ("e", "ll"), ("h", "ell"), ("hell", "o</w>")]
    suf_extra = ([B2U[b] + "</w>" for b in range(256) if B2U[b] not in "xyz"] +
                 merged_vocab(suf_merges))
    out.append(("suffix", synthetic_base(extra=suf_extra, merges=suf_merges,
                                         end_of_word_suffix="</w>")))
    both_merges = [("a", "##b"), ("ab", "##c</w>"), ("Ġ", "##a</w>"), ("h", "##i</w>")]
    both_extra = (["##" + B2U[b] for b in range(256)] +
                  ["##" + B2U[b] + "</w>" for b in range(256)] +
                  [B2U[b] + "</w>" for b in range(256)] + merged_vocab(both_merges, "##"))
    out.append(("prefix_suffix", synthetic_base(extra=both_extra, merges=both_merges,
                                                continuing_subword_prefix="##",
                                                end_of_word_suffix="</w>")))
    # byte_fallback: missing byte tokens become <0xXX> tokens of their alphabet character's
    # UTF-8 when all of those exist ('Ą' for byte 4 is C4 84); 'ð' (byte 0xF0) lacks <0xC3>.
    fb_missing = (4, 6, 0xF0, 0x9F)
    fb_extra = ["<0xC4>", "<0x84>", "<0x86>", "<0xB0>", "<unk>"] + merged_vocab(plain_merges)
    out.append(("byte_fallback", synthetic_base(missing=fb_missing, extra=fb_extra,
                                                merges=plain_merges, byte_fallback=True)))
    out.append(("byte_fallback_unk", synthetic_base(
        missing=fb_missing, extra=fb_extra, merges=plain_merges, byte_fallback=True,
        unk_token="<unk>")))
    # unk_token, with and without fuse_unk; the unk symbol takes part in merges.
    unk_merges = plain_merges + [("!", "<unk>"), ("<unk>", "!")]
    unk_missing = (4, 6, 0x13, 0xF0, 0xF3)
    unk_extra = ["<unk>"] + merged_vocab(unk_merges)
    out.append(("unk", synthetic_base(missing=unk_missing, extra=unk_extra, merges=unk_merges,
                                      unk_token="<unk>")))
    out.append(("unk_fused", synthetic_base(missing=unk_missing, extra=unk_extra,
                                            merges=unk_merges, unk_token="<unk>",
                                            fuse_unk=True)))
    out.append(("unk_ignore_merges", synthetic_base(
        missing=unk_missing, extra=unk_extra + ["xyz", "Ġzz", "!!"], merges=unk_merges,
        unk_token="<unk>", ignore_merges=True)))
    # A merge listed twice counts at its last rank (tokenizers collects the ranks into a map).
    dup_merges = [("a", "b"), ("b", "c"), ("a", "b"), ("c", "d"), ("b", "c"), ("l", "l")]
    out.append(("repeated_merges", synthetic_base(extra=merged_vocab(dup_merges),
                                                  merges=dup_merges)))
    # The smallest case: only the byte alphabet, no merges, a missing byte dropped.
    out.append(("bytes_only_missing", synthetic_base(missing=(0x20,), merges=[])))
    return out


def encode_all(tok, texts, add_special=False):
    return [tok.encode(t, add_special_tokens=add_special).ids for t in texts]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smollm2", default=str(ROOT.parent / "smollm2" / "hf"))
    ap.add_argument("--out", default=str(ROOT / "tests/fixtures/tokenizer"))
    args = ap.parse_args()
    src = Path(args.smollm2)
    out = Path(args.out)
    (out / "smollm2").mkdir(parents=True, exist_ok=True)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(src / f, out / "smollm2" / f)
    base = json.loads((src / "tokenizer.json").read_text(encoding="utf-8"))

    texts = EXTRA + CORPUS + random_strings(60, seed=4321)
    short_texts = EXTRA + CORPUS[:24] + random_strings(12, seed=99)
    # Random strings over the characters the synthetic vocabularies care about.
    rng = random.Random(7)
    pool = ["a", "b", "c", "d", "ab", "abc", "hello", " world", " ", "  ", "!", "\x04", "\x06",
            "\x13", "ð", "😀", "\U000F0000", "x", "y", "z", "\n", "2", "ll", "lo", "hi",
            "xyz", " zz"]
    short_texts += ["".join(rng.choice(pool) for _ in range(rng.randint(1, 12)))
                    for _ in range(40)]

    # To keep the file small, a SmolLM2 variant lists only the ids that differ from SmolLM2's
    # ("ids_diff": {text index: ids}), and every variant only the decoded texts that differ from
    # the input ("decoded_diff").
    def decoded_diff(tok, ids, txts):
        out = {}
        for k, (x, t) in enumerate(zip(ids, txts)):
            d = tok.decode(x, skip_special_tokens=False)
            if d != t:
                out[str(k)] = d
        return out

    variants = []
    base_ids = None
    for name, patch in SMOLLM2_VARIANTS:
        tj = apply_variant(base, patch)
        tok = Tokenizer.from_str(json.dumps(tj))
        ids = encode_all(tok, texts)
        v = {"name": name, "base": "smollm2", "patch": patch, "texts": "texts"}
        if base_ids is None:
            base_ids = ids
            v["ids"] = ids
        else:
            v["ids_diff"] = {str(k): x for k, x in enumerate(ids) if x != base_ids[k]}
        v["decoded_diff"] = decoded_diff(tok, ids, texts)
        if "post_processor" in patch:
            # What add_special_tokens=True adds around the ids, the same for every text.
            pre = post = None
            fulls = encode_all(tok, texts, add_special=True)
            k = next(i for i, x in enumerate(ids) if x)
            start = next(i for i in range(len(fulls[k])) if fulls[k][i:i + len(ids[k])] == ids[k])
            pre, post = fulls[k][:start], fulls[k][start + len(ids[k]):]
            assert all(f == pre + x + post for x, f in zip(ids, fulls)), name
            v["special_prefix"], v["special_suffix"] = pre, post
        variants.append(v)
    for name, tj in synthetic_variants():
        tok = Tokenizer.from_str(json.dumps(tj))
        ids = encode_all(tok, short_texts)
        variants.append({"name": name, "tokenizer": tj, "texts": "short_texts", "ids": ids,
                         "decoded_diff": decoded_diff(tok, ids, short_texts)})

    # tokenizers fails to encode text that needs an unk_token missing from the vocabulary.
    tj = synthetic_base(missing=(4,), merges=[], unk_token="<nope>")
    tok = Tokenizer.from_str(json.dumps(tj))
    unk_missing = {"tokenizer": tj, "ok_text": "abc", "ok_ids": tok.encode("abc").ids,
                   "bad_text": "a\x04b"}
    try:
        tok.encode("a\x04b")
        raise SystemExit("expected tokenizers to fail on an unk_token outside the vocabulary")
    except Exception as e:  # noqa: BLE001 - the exception type is not exported
        unk_missing["hf_error"] = str(e)

    doc = {"generator": f"tokenizers {tokenizers.__version__} Tokenizer.encode / decode",
           "texts": texts, "short_texts": short_texts, "variants": variants,
           "unk_missing": unk_missing}
    path = out / "bpe_variants.json"
    with path.open("w", encoding="utf-8") as f:
        # One variant field per line keeps the file readable and diffable.
        f.write("{\n")
        items = list(doc.items())
        for k, (key, val) in enumerate(items):
            sep = "," if k + 1 < len(items) else ""
            if key == "variants":
                f.write(' "variants": [\n')
                for j, v in enumerate(val):
                    f.write("  " + json.dumps(v, ensure_ascii=False, separators=(",", ":")))
                    f.write(",\n" if j + 1 < len(val) else "\n")
                f.write(" ]" + sep + "\n")
            else:
                f.write(f" {json.dumps(key)}: {json.dumps(val, ensure_ascii=False)}{sep}\n")
        f.write("}\n")
    print(f"wrote {path}: {len(variants)} variants, {len(texts)} + {len(short_texts)} texts, "
          f"{path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
