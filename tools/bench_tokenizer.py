#!/usr/bin/env python3
"""Tokenizer throughput: resp's C++ tokenizer beside Hugging Face `tokenizers`, single thread.

    pip install tokenizers
    cmake --build BUILD --target bench_tokenizer
    python3 tools/bench_tokenizer.py --bench BUILD/tests/tokenizer/bench_tokenizer \
        [--model tests/fixtures/tokenizer/qwen3] [--mb 10]

Builds a ~10 MB English + code + CJK text from files found on the machine (GSM8K and MathQA
from ../shared/data, C++ headers and the Python standard library for code, the Vim tutors and
other UTF-8 CJK documents for CJK), encodes it with both libraries on one thread, checks that the
ids are identical and prints MB/s. Run it on an otherwise idle machine; it takes about a minute.
"""

import argparse
import glob
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

ROOT = Path(__file__).resolve().parent.parent


def english(shared):
    out = []
    for path in (
        shared / "data/gsm8k/train.jsonl",
        shared / "data/mathqa/test-rows-0-799.jsonl",
    ):
        if not path.exists():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            out.append("\n".join(str(v) for v in rec.values() if isinstance(v, str)))
    return out


def code():
    files = sorted(glob.glob("/usr/include/c++/*/bits/*.h")) + sorted(
        glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "*.py")))
    files += sorted(str(p) for p in (ROOT / "src").rglob("*.[ch]pp"))
    out = []
    for f in files:
        try:
            out.append(Path(f).read_text(encoding="utf-8"))
        except (UnicodeDecodeError, OSError):
            pass
    return out


def cjk():
    cand = sorted(glob.glob("/usr/share/vim/vim*/tutor/tutor.*utf-8"))
    cand += sorted(glob.glob("/usr/share/gnupg/help.*.txt"))
    cand += sorted(glob.glob(os.path.join(sysconfig.get_paths()["stdlib"],
                                          "test/cjkencodings/*-utf8.txt")))
    cand += sorted(glob.glob(os.path.expanduser(
        "~/.rustup/toolchains/*/share/doc/rust/html/rust-by-example/*/print.html")))
    han = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff\uac00-\ud7af]")
    out = []
    for f in cand:
        try:
            s = Path(f).read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if f.endswith(".html"):
            s = re.sub(r"<[^>]+>", "", s)
            s = re.sub(r"&[a-z]+;", " ", s)
        paras = [p for p in re.split(r"\n\s*\n", s) if len(han.findall(p)) > len(p) // 8]
        out.extend(paras)
    return out


def build_text(shared, total_mb, seed=0):
    """~55% English, ~30% code, ~15% CJK (by bytes); each part cycles its sources in order."""
    rng = random.Random(seed)
    target = int(total_mb * 1e6)
    parts = {"english": (english(shared), 0.55), "code": (code(), 0.30), "cjk": (cjk(), 0.15)}
    chunks, sizes = [], {}
    for name, (docs, frac) in parts.items():
        if not docs:
            sys.exit(f"no {name} sources found on this machine")
        want, got, i = int(target * frac), 0, 0
        while got < want:
            d = docs[i % len(docs)]
            chunks.append(d)
            got += len(d.encode("utf-8")) + 2
            i += 1
        sizes[name] = (got, i, len(docs))
    rng.shuffle(chunks)
    return "\n\n".join(chunks), sizes


def hf_bench(model_dir, text):
    from tokenizers import Tokenizer
    res = {}
    t0 = time.perf_counter()
    tok = Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))
    res["load_s"] = time.perf_counter() - t0
    mb = len(text.encode("utf-8")) / 1e6
    t0 = time.perf_counter()
    ids = tok.encode(text, add_special_tokens=False).ids
    res["encode_cold_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    tok.encode(text, add_special_tokens=False)
    res["encode_warm_s"] = time.perf_counter() - t0
    tok = Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))
    lines = text.splitlines(keepends=True)
    t0 = time.perf_counter()
    n = 0
    for line in lines:
        n += len(tok.encode(line, add_special_tokens=False).ids)
    res["encode_lines_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    tok.decode(ids, skip_special_tokens=False)
    res["decode_s"] = time.perf_counter() - t0
    for k in ("encode_cold", "encode_warm", "encode_lines"):
        res[k + "_mb_s"] = mb / res[k + "_s"]
    res["tokens"] = len(ids)
    return res, ids


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bench", required=True, help="path of the bench_tokenizer binary")
    ap.add_argument("--model", default=str(ROOT / "tests/fixtures/tokenizer/qwen3"))
    ap.add_argument("--shared", default=str(ROOT.parent / "shared"))
    ap.add_argument("--mb", type=float, default=10.0)
    ap.add_argument("--text", default="/tmp/resp_tokenizer_bench.txt")
    args = ap.parse_args()

    text, sizes = build_text(Path(args.shared), args.mb)
    Path(args.text).write_text(text, encoding="utf-8")
    raw = text.encode("utf-8")
    print(f"text: {len(raw) / 1e6:.2f} MB, sha256 {hashlib.sha256(raw).hexdigest()[:16]}")
    for name, (nbytes, n, ndocs) in sizes.items():
        print(f"  {name}: {nbytes / 1e6:.2f} MB ({n} chunks from {ndocs} distinct)")

    ids_path = args.text + ".ids"
    out = subprocess.run(["taskset", "-c", "0", args.bench, args.model, args.text, ids_path],
                         check=True, capture_output=True, text=True).stdout
    ours = json.loads(out)
    hf, hf_ids = hf_bench(args.model, text)
    import array
    ours_ids = array.array("i")
    ours_ids.frombytes(Path(ids_path).read_bytes())
    same = list(ours_ids) == hf_ids
    print(f"ids identical to HF: {same} ({len(hf_ids)} tokens)")
    print(f"{'':24}{'resp (C++)':>14}{'HF tokenizers':>16}")
    for k, label in (("load_s", "load (s)"), ("encode_cold_mb_s", "encode, cold (MB/s)"),
                     ("encode_warm_mb_s", "encode, warm (MB/s)"),
                     ("encode_lines_mb_s", "encode by line (MB/s)")):
        print(f"{label:24}{ours[k]:>14.2f}{hf[k]:>16.2f}")
    print(f"{'decode (s)':24}{ours['decode_s']:>14.3f}{hf['decode_s']:>16.3f}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
