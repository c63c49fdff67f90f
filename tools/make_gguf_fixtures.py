#!/usr/bin/env python3
"""Writes tests/fixtures/gguf/reference.gguf with the `gguf` package (llama.cpp's gguf-py): an
independent GGUF writer and ggml's dequantizers in numpy, to check resp's reader against.

    python3 tools/make_gguf_fixtures.py [--out tests/fixtures/gguf/reference.gguf]

Contents (deterministic: numpy seed 1234):
  * one tensor per dequantizable ggml type, named by the type ("Q4_K", ...), of random blocks
    whose f16/f32 scale fields are set to finite values in +-[1e-3, 1] (so no NaN/Inf), on odd
    shapes (3 or 5 rows; rows of 3 blocks for 32-element types, 1 or 2 blocks for 256-element
    ones), and next to it "<type>.expected": F32, what gguf.dequantize returns for it (Q8_K,
    which gguf-py lacks, is d * q computed here in float32 as ggml does);
  * metadata of every value type: test.u8 .. test.f64, test.bool, test.string (UTF-8),
    test.array_i32, test.array_str (with an empty string), test.array_f32, test.nested
    (an array of arrays), and general.alignment = 64.

The C++ test (tests/model/test_gguf.cpp) requires resp's dequantization to equal the expected
tensors bit for bit and the metadata to read back exactly.
"""

import argparse
import os

import numpy as np

import gguf
from gguf import GGMLQuantizationType as T

# (type, rows, blocks per row, byte offsets of f16 scale fields in a block)
TYPES = [
    (T.Q4_0, 3, 3, [0]),
    (T.Q4_1, 5, 3, [0, 2]),
    (T.Q5_0, 3, 3, [0]),
    (T.Q5_1, 5, 3, [0, 2]),
    (T.Q8_0, 3, 3, [0]),
    (T.Q2_K, 3, 1, [80, 82]),
    (T.Q3_K, 5, 1, [108]),
    (T.Q4_K, 3, 2, [0, 2]),
    (T.Q5_K, 3, 1, [0, 2]),
    (T.Q6_K, 5, 1, [208]),
]


def scales(rng, n):
    mag = rng.uniform(1e-3, 1.0, n) * rng.choice([-1.0, 1.0], n)
    return mag.astype(np.float16)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures",
                                                  "gguf", "reference.gguf"))
    args = ap.parse_args()
    rng = np.random.default_rng(1234)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)

    w = gguf.GGUFWriter(args.out, arch="test")
    w.add_custom_alignment(64)
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4000000000)
    w.add_int32("test.i32", -2000000000)
    w.add_float32("test.f32", 1.5)
    w.add_uint64("test.u64", 2**63 + 5)
    w.add_int64("test.i64", -(2**62))
    w.add_float64("test.f64", 0.1)
    w.add_bool("test.bool", True)
    w.add_string("test.string", "h\u00e9llo w\u00f6rld \u6771\u4eac")
    w.add_array("test.array_i32", [1, -2, 3])
    w.add_array("test.array_str", ["a", "bc", ""])
    w.add_array("test.array_f32", [0.5, -0.25])
    w.add_array("test.nested", [[1, 2], [3]])

    for qtype, rows, blocks, half_fields in TYPES:
        block, size = gguf.GGML_QUANT_SIZES[qtype]
        raw = rng.integers(0, 256, size=(rows * blocks, size), dtype=np.uint8)
        for off in half_fields:
            raw[:, off:off + 2] = scales(rng, rows * blocks).view(np.uint8).reshape(-1, 2)
        raw = raw.reshape(rows, blocks * size)
        cols = blocks * block
        w.add_tensor(qtype.name, raw, raw_dtype=qtype)
        expected = gguf.dequantize(raw, qtype).astype(np.float32).reshape(rows, cols)
        w.add_tensor(qtype.name + ".expected", expected)

    # Q8_K: f32 d, 256 int8, 16 int16 sums (unused by dequantization).
    rows = 3
    raw = rng.integers(0, 256, size=(rows, 292), dtype=np.uint8)
    d = rng.uniform(1e-3, 1.0, rows).astype(np.float32)
    raw[:, 0:4] = d.view(np.uint8).reshape(rows, 4)
    w.add_tensor("Q8_K", raw, raw_dtype=T.Q8_K)
    q = raw[:, 4:260].view(np.int8).astype(np.float32)
    w.add_tensor("Q8_K.expected", (d[:, None] * q).astype(np.float32))

    # Plain float types on an odd shape.
    f32 = rng.standard_normal((7, 13)).astype(np.float32)
    w.add_tensor("F32", f32)
    w.add_tensor("F32.expected", f32)
    f16 = rng.standard_normal((7, 13)).astype(np.float16)
    w.add_tensor("F16", f16)
    w.add_tensor("F16.expected", f16.astype(np.float32))
    bf16 = gguf.quants.quantize(rng.standard_normal((5, 11)).astype(np.float32), T.BF16)
    w.add_tensor("BF16", bf16, raw_dtype=T.BF16)
    w.add_tensor("BF16.expected", gguf.dequantize(bf16, T.BF16).astype(np.float32).reshape(5, 11))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print("wrote", args.out, os.path.getsize(args.out), "bytes")


if __name__ == "__main__":
    main()
