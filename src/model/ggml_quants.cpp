// Bit-exactness: every expression below rounds exactly where ggml's reference C rounds (one f32
// product, then one f32 sum or difference). This file is compiled with -ffp-contract=off, since a
// fused multiply-add would skip a rounding and change the last bit of some weights.
#include "model/ggml_quants.h"

#include <bit>
#include <cstring>

#include "core/dtype.h"
#include "core/error.h"

namespace resp {

static_assert(std::endian::native == std::endian::little,
              "GGUF data is little-endian; the dequantizers read it in place");

namespace {

constexpr int64_t QK_K = 256;

// ggml's block sizes and bytes per block (ggml-common.h), per type id.
struct Entry {
  uint32_t id;
  GgmlTypeTraits traits;
};
constexpr Entry kTypes[] = {
    {0, {"F32", 1, 4, true}},
    {1, {"F16", 1, 2, true}},
    {2, {"Q4_0", 32, 2 + 16, true}},
    {3, {"Q4_1", 32, 2 + 2 + 16, true}},
    {6, {"Q5_0", 32, 2 + 4 + 16, true}},
    {7, {"Q5_1", 32, 2 + 2 + 4 + 16, true}},
    {8, {"Q8_0", 32, 2 + 32, true}},
    {9, {"Q8_1", 32, 2 + 2 + 32, false}},
    {10, {"Q2_K", QK_K, 2 + 2 + QK_K / 16 + QK_K / 4, true}},
    {11, {"Q3_K", QK_K, 2 + QK_K / 4 + QK_K / 8 + 12, true}},
    {12, {"Q4_K", QK_K, 2 + 2 + 12 + QK_K / 2, true}},
    {13, {"Q5_K", QK_K, 2 + 2 + 12 + QK_K / 8 + QK_K / 2, true}},
    {14, {"Q6_K", QK_K, QK_K / 2 + QK_K / 4 + QK_K / 16 + 2, true}},
    {15, {"Q8_K", QK_K, 4 + QK_K + QK_K / 16 * 2, true}},
    {16, {"IQ2_XXS", QK_K, 2 + QK_K / 4, false}},
    {17, {"IQ2_XS", QK_K, 2 + QK_K / 4 + QK_K / 32, false}},
    {18, {"IQ3_XXS", QK_K, 2 + QK_K / 4 + QK_K / 8, false}},
    {19, {"IQ1_S", QK_K, 2 + QK_K / 8 + QK_K / 16, false}},
    {20, {"IQ4_NL", 32, 2 + 16, false}},
    {21, {"IQ3_S", QK_K, 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4, false}},
    {22, {"IQ2_S", QK_K, 2 + QK_K / 4 + QK_K / 16, false}},
    {23, {"IQ4_XS", QK_K, 2 + 2 + QK_K / 2 + QK_K / 64, false}},
    {24, {"I8", 1, 1, false}},
    {25, {"I16", 1, 2, false}},
    {26, {"I32", 1, 4, false}},
    {27, {"I64", 1, 8, false}},
    {28, {"F64", 1, 8, false}},
    {29, {"IQ1_M", QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32, false}},
    {30, {"BF16", 1, 2, true}},
    {34, {"TQ1_0", QK_K, 2 + 4 * 13, false}},
    {35, {"TQ2_0", QK_K, 2 + 64, false}},
    {39, {"MXFP4", 32, 1 + 16, false}},
    {40, {"NVFP4", 64, 4 + 32, false}},
    {41, {"Q1_0", 128, 2 + 16, false}},
};

float half(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}

// Q4_0: d (f16), qs[16]; element j is the low nibble of qs[j], j + 16 the high nibble.
void dq_q4_0(const uint8_t* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, b += 18, y += 32) {
    const float d = half(b);
    const uint8_t* qs = b + 2;
    for (int j = 0; j < 16; ++j) {
      const int x0 = (qs[j] & 0x0F) - 8;
      const int x1 = (qs[j] >> 4) - 8;
      y[j] = static_cast<float>(x0) * d;
      y[j + 16] = static_cast<float>(x1) * d;
    }
  }
}

// Q4_1: d, m (f16), qs[16]; y = q * d + m.
void dq_q4_1(const uint8_t* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, b += 20, y += 32) {
    const float d = half(b), m = half(b + 2);
    const uint8_t* qs = b + 4;
    for (int j = 0; j < 16; ++j) {
      const int x0 = qs[j] & 0x0F;
      const int x1 = qs[j] >> 4;
      y[j] = static_cast<float>(x0) * d + m;
      y[j + 16] = static_cast<float>(x1) * d + m;
    }
  }
}

// Q5_0: d, qh (32 fifth bits), qs[16]; values 0..31 centred at 16.
void dq_q5_0(const uint8_t* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, b += 22, y += 32) {
    const float d = half(b);
    uint32_t qh;
    std::memcpy(&qh, b + 2, 4);
    const uint8_t* qs = b + 6;
    for (int j = 0; j < 16; ++j) {
      const uint8_t xh0 = static_cast<uint8_t>(((qh >> j) << 4) & 0x10);
      const uint8_t xh1 = static_cast<uint8_t>((qh >> (j + 12)) & 0x10);
      const int x0 = ((qs[j] & 0x0F) | xh0) - 16;
      const int x1 = ((qs[j] >> 4) | xh1) - 16;
      y[j] = static_cast<float>(x0) * d;
      y[j + 16] = static_cast<float>(x1) * d;
    }
  }
}

// Q5_1: d, m, qh, qs[16]; y = q * d + m.
void dq_q5_1(const uint8_t* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, b += 24, y += 32) {
    const float d = half(b), m = half(b + 2);
    uint32_t qh;
    std::memcpy(&qh, b + 4, 4);
    const uint8_t* qs = b + 8;
    for (int j = 0; j < 16; ++j) {
      const uint8_t xh0 = static_cast<uint8_t>(((qh >> j) << 4) & 0x10);
      const uint8_t xh1 = static_cast<uint8_t>((qh >> (j + 12)) & 0x10);
      const int x0 = (qs[j] & 0x0F) | xh0;
      const int x1 = (qs[j] >> 4) | xh1;
      y[j] = static_cast<float>(x0) * d + m;
      y[j + 16] = static_cast<float>(x1) * d + m;
    }
  }
}

// Q8_0: d, qs[32] (int8).
void dq_q8_0(const uint8_t* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, b += 34, y += 32) {
    const float d = half(b);
    for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(static_cast<int8_t>(b[2 + j])) * d;
  }
}

// Q2_K: scales[16] (low nibble scale, high nibble min), qs[64] (2 bits), d, dmin.
void dq_q2_k(const uint8_t* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, b += 84) {
    const uint8_t* scales = b;
    const uint8_t* q = b + 16;
    const float d = half(b + 80), min = half(b + 82);
    int is = 0;
    for (int n = 0; n < QK_K; n += 128) {
      int shift = 0;
      for (int j = 0; j < 4; ++j) {
        for (int half_ = 0; half_ < 2; ++half_) {
          const uint8_t sc = scales[is++];
          const float dl = d * static_cast<float>(sc & 0xF);
          const float ml = min * static_cast<float>(sc >> 4);
          const uint8_t* qq = q + 16 * half_;
          for (int l = 0; l < 16; ++l)
            *y++ = dl * static_cast<float>(static_cast<int8_t>((qq[l] >> shift) & 3)) - ml;
        }
        shift += 2;
      }
      q += 32;
    }
  }
}

// Q3_K: hmask[32] (third bit; clear means -4), qs[64] (2 bits), scales[12] (16 six-bit
// scales, offset 32), d.
void dq_q3_k(const uint8_t* b, float* y, int64_t nb) {
  constexpr uint32_t kmask1 = 0x03030303, kmask2 = 0x0f0f0f0f;
  for (int64_t i = 0; i < nb; ++i, b += 110) {
    const uint8_t* hm = b;
    const uint8_t* q = b + 32;
    const float d_all = half(b + 108);
    uint32_t aux[4];
    std::memcpy(aux, b + 96, 12);
    const uint32_t tmp = aux[2];
    aux[2] = ((aux[0] >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4);
    aux[3] = ((aux[1] >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4);
    aux[0] = (aux[0] & kmask2) | (((tmp >> 0) & kmask1) << 4);
    aux[1] = (aux[1] & kmask2) | (((tmp >> 2) & kmask1) << 4);
    int8_t scales[16];
    std::memcpy(scales, aux, 16);
    int is = 0;
    uint8_t m = 1;
    for (int n = 0; n < QK_K; n += 128) {
      int shift = 0;
      for (int j = 0; j < 4; ++j) {
        for (int half_ = 0; half_ < 2; ++half_) {
          const float dl = d_all * static_cast<float>(scales[is++] - 32);
          const int o = 16 * half_;
          for (int l = 0; l < 16; ++l) {
            const int v = static_cast<int8_t>((q[l + o] >> shift) & 3) - ((hm[l + o] & m) ? 0 : 4);
            *y++ = dl * static_cast<float>(v);
          }
        }
        shift += 2;
        m = static_cast<uint8_t>(m << 1);
      }
      q += 32;
    }
  }
}

// The 6-bit scale and min of sub-block j of a Q4_K / Q5_K block (ggml's get_scale_min_k4).
void scale_min_k4(int j, const uint8_t* q, uint8_t* d, uint8_t* m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
  }
}

// Q4_K: d, dmin, scales[12], qs[128]; eight sub-blocks of 32, y = d*sc * q - dmin*m.
void dq_q4_k(const uint8_t* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, b += 144) {
    const float d = half(b), min = half(b + 2);
    const uint8_t* scales = b + 4;
    const uint8_t* q = b + 16;
    int is = 0;
    for (int j = 0; j < QK_K; j += 64) {
      uint8_t sc, m;
      scale_min_k4(is + 0, scales, &sc, &m);
      const float d1 = d * static_cast<float>(sc), m1 = min * static_cast<float>(m);
      scale_min_k4(is + 1, scales, &sc, &m);
      const float d2 = d * static_cast<float>(sc), m2 = min * static_cast<float>(m);
      for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(q[l] >> 4) - m2;
      q += 32;
      is += 2;
    }
  }
}

// Q5_K: Q4_K plus qh[32], the fifth bit of each value.
void dq_q5_k(const uint8_t* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, b += 176) {
    const float d = half(b), min = half(b + 2);
    const uint8_t* scales = b + 4;
    const uint8_t* qh = b + 16;
    const uint8_t* ql = b + 48;
    int is = 0;
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0; j < QK_K; j += 64) {
      uint8_t sc, m;
      scale_min_k4(is + 0, scales, &sc, &m);
      const float d1 = d * static_cast<float>(sc), m1 = min * static_cast<float>(m);
      scale_min_k4(is + 1, scales, &sc, &m);
      const float d2 = d * static_cast<float>(sc), m2 = min * static_cast<float>(m);
      for (int l = 0; l < 32; ++l)
        *y++ = d1 * static_cast<float>((ql[l] & 0xF) + ((qh[l] & u1) ? 16 : 0)) - m1;
      for (int l = 0; l < 32; ++l)
        *y++ = d2 * static_cast<float>((ql[l] >> 4) + ((qh[l] & u2) ? 16 : 0)) - m2;
      ql += 32;
      is += 2;
      u1 = static_cast<uint8_t>(u1 << 2);
      u2 = static_cast<uint8_t>(u2 << 2);
    }
  }
}

// Q6_K: ql[128] (low 4 bits), qh[64] (high 2 bits), scales[16] (int8), d; y = d * sc * q.
void dq_q6_k(const uint8_t* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, b += 210) {
    const uint8_t* ql = b;
    const uint8_t* qh = b + 128;
    const auto* sc = reinterpret_cast<const int8_t*>(b + 192);
    const float d = half(b + 208);
    for (int n = 0; n < QK_K; n += 128) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = static_cast<int8_t>((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = static_cast<int8_t>((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = static_cast<int8_t>((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = static_cast<int8_t>((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l + 0] = d * static_cast<float>(sc[is + 0]) * static_cast<float>(q1);
        y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
        y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
        y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
      }
      y += 128;
      ql += 64;
      qh += 32;
      sc += 8;
    }
  }
}

// Q8_K: d (f32), qs[256] (int8), bsums[16] (unused here).
void dq_q8_k(const uint8_t* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, b += 292, y += QK_K) {
    float d;
    std::memcpy(&d, b, 4);
    for (int j = 0; j < QK_K; ++j) y[j] = d * static_cast<float>(static_cast<int8_t>(b[4 + j]));
  }
}

}  // namespace

const GgmlTypeTraits* ggml_type_traits(uint32_t type) {
  for (const Entry& e : kTypes)
    if (e.id == type) return &e.traits;
  return nullptr;
}

std::string ggml_type_name(uint32_t type) {
  const GgmlTypeTraits* t = ggml_type_traits(type);
  return t ? std::string(t->name) : cat("type ", type);
}

void ggml_dequantize_row(GgmlType type, const uint8_t* src, float* dst, int64_t n) {
  const auto id = static_cast<uint32_t>(type);
  const GgmlTypeTraits* t = ggml_type_traits(id);
  if (!t) throw UnsupportedError(cat("unknown ggml type ", id));
  if (!t->dequantizable)
    throw UnsupportedError(cat("dequantizing ggml type ", t->name, " is not supported"));
  RESP_CHECK_SHAPE(n >= 0 && n % t->block_size == 0, n, " elements is not a whole number of ",
                   t->name, " blocks of ", t->block_size);
  const int64_t nb = n / t->block_size;
  switch (type) {
    case GgmlType::F32:
      if (n > 0) std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      return;
    case GgmlType::F16:
      for (int64_t i = 0; i < n; ++i) dst[i] = half(src + 2 * i);
      return;
    case GgmlType::BF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = bf16_to_f32(h);
      }
      return;
    case GgmlType::Q4_0:
      return dq_q4_0(src, dst, nb);
    case GgmlType::Q4_1:
      return dq_q4_1(src, dst, nb);
    case GgmlType::Q5_0:
      return dq_q5_0(src, dst, nb);
    case GgmlType::Q5_1:
      return dq_q5_1(src, dst, nb);
    case GgmlType::Q8_0:
      return dq_q8_0(src, dst, nb);
    case GgmlType::Q2_K:
      return dq_q2_k(src, dst, nb);
    case GgmlType::Q3_K:
      return dq_q3_k(src, dst, nb);
    case GgmlType::Q4_K:
      return dq_q4_k(src, dst, nb);
    case GgmlType::Q5_K:
      return dq_q5_k(src, dst, nb);
    case GgmlType::Q6_K:
      return dq_q6_k(src, dst, nb);
    case GgmlType::Q8_K:
      return dq_q8_k(src, dst, nb);
    default:
      break;
  }
  throw UnsupportedError(cat("dequantizing ggml type ", t->name, " is not supported"));
}

}  // namespace resp
