// Storage dtypes. CPU compute is always f32; bf16/f16 exist as storage (checkpoints, GPU).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace resp {

enum class DType : uint8_t { F32, F64, BF16, F16, I32, I64, U8 };

size_t dtype_size(DType t);
std::string_view dtype_name(DType t);
// Parses safetensors dtype names ("F32", "BF16", ...); throws FormatError on unknown names.
DType parse_safetensors_dtype(std::string_view s);

inline float bf16_to_f32(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Round to nearest even, NaN kept quiet.
inline uint16_t f32_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// Converts n elements of `src` (dtype `t`) to f32.
void convert_to_f32(DType t, const void* src, float* dst, size_t n);

}  // namespace resp
