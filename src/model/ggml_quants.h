// ggml tensor types as GGUF files store them: the block layout of every type llama.cpp writes
// (so a reader can check sizes and offsets of any tensor) and dequantization to f32 of the types
// real checkpoints use: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K,
// Q6_K, Q8_K. Each dequantizer follows ggml's reference dequantize_row_* operation by operation
// (same products and sums, each rounded to f32), so its output is bit-identical to llama.cpp's
// reference path and to the `gguf` Python package's numpy dequantizers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace resp {

// The numbering of ggml.h's enum ggml_type (gaps are types ggml removed).
enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  MXFP4 = 39,
  NVFP4 = 40,
  Q1_0 = 41,
};

struct GgmlTypeTraits {
  const char* name = nullptr;  // ggml's spelling ("Q4_K")
  int64_t block_size = 0;      // elements per block
  size_t type_size = 0;        // bytes per block
  bool dequantizable = false;  // ggml_dequantize_row() handles it
};

// Traits of a type id from a file; nullptr when ggml has no such type.
const GgmlTypeTraits* ggml_type_traits(uint32_t type);
// "Q4_K", or "type 31" for an unknown id.
std::string ggml_type_name(uint32_t type);

// Dequantizes `n` elements (a multiple of the type's block size) stored at `src` to f32.
// Throws UnsupportedError for a type that is known but not dequantizable, ShapeError when n is
// not a whole number of blocks.
void ggml_dequantize_row(GgmlType type, const uint8_t* src, float* dst, int64_t n);

}  // namespace resp
