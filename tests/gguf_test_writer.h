// A minimal GGUF writer for tests: builds valid files (and, by editing the bytes or the fields,
// deliberately broken ones) without llama.cpp. Little-endian, versions 2/3 share the layout.
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

namespace resp::test {

class GgufBytes {
 public:
  std::vector<uint8_t> b;
  template <typename T>
  GgufBytes& put(T v) {
    uint8_t tmp[sizeof(T)];
    std::memcpy(tmp, &v, sizeof(T));
    b.insert(b.end(), tmp, tmp + sizeof(T));
    return *this;
  }
  GgufBytes& str(const std::string& s) {
    put<uint64_t>(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  GgufBytes& raw(const std::vector<uint8_t>& v) {
    b.insert(b.end(), v.begin(), v.end());
    return *this;
  }
};

// Value type ids (gguf_type).
enum : uint32_t {
  kU8 = 0,
  kI8,
  kU16,
  kI16,
  kU32,
  kI32,
  kF32,
  kBool,
  kString,
  kArray,
  kU64,
  kI64,
  kF64
};

struct GgufTensorSpec {
  std::string name;
  uint32_t type = 0;           // ggml type
  std::vector<uint64_t> dims;  // ggml order (innermost first)
  std::vector<uint8_t> data;
  std::optional<uint64_t> offset;  // overrides the computed (aligned, packed) offset
};

class GgufBuilder {
 public:
  uint32_t version = 3;
  size_t alignment = 32;
  std::vector<std::pair<std::string, std::vector<uint8_t>>> kvs;  // key -> type + value bytes
  std::vector<GgufTensorSpec> tensors;

  // Scalars and arrays; the value bytes include the type tag.
  template <typename T>
  GgufBuilder& scalar(const std::string& key, uint32_t type, T v) {
    GgufBytes x;
    x.put<uint32_t>(type).put<T>(v);
    kvs.emplace_back(key, x.b);
    return *this;
  }
  GgufBuilder& u32(const std::string& k, uint32_t v) { return scalar(k, kU32, v); }
  GgufBuilder& i32(const std::string& k, int32_t v) { return scalar(k, kI32, v); }
  GgufBuilder& u64(const std::string& k, uint64_t v) { return scalar(k, kU64, v); }
  GgufBuilder& f32(const std::string& k, float v) { return scalar(k, kF32, v); }
  GgufBuilder& boolean(const std::string& k, bool v) {
    return scalar<uint8_t>(k, kBool, v ? 1 : 0);
  }
  GgufBuilder& string(const std::string& k, const std::string& v) {
    GgufBytes x;
    x.put<uint32_t>(kString).str(v);
    kvs.emplace_back(k, x.b);
    return *this;
  }
  GgufBuilder& strings(const std::string& k, const std::vector<std::string>& v) {
    GgufBytes x;
    x.put<uint32_t>(kArray).put<uint32_t>(kString).put<uint64_t>(v.size());
    for (const auto& s : v) x.str(s);
    kvs.emplace_back(k, x.b);
    return *this;
  }
  GgufBuilder& i32s(const std::string& k, const std::vector<int32_t>& v) {
    GgufBytes x;
    x.put<uint32_t>(kArray).put<uint32_t>(kI32).put<uint64_t>(v.size());
    for (int32_t i : v) x.put<int32_t>(i);
    kvs.emplace_back(k, x.b);
    return *this;
  }
  GgufBuilder& raw_kv(const std::string& k, const std::vector<uint8_t>& type_and_value) {
    kvs.emplace_back(k, type_and_value);
    return *this;
  }
  GgufBuilder& tensor(const std::string& name, uint32_t type, std::vector<uint64_t> dims,
                      std::vector<uint8_t> data) {
    tensors.push_back({name, type, std::move(dims), std::move(data), std::nullopt});
    return *this;
  }
  // An F32 tensor with the given (ggml-order) dims and values.
  GgufBuilder& f32_tensor(const std::string& name, std::vector<uint64_t> dims,
                          const std::vector<float>& v) {
    std::vector<uint8_t> d(v.size() * 4);
    std::memcpy(d.data(), v.data(), d.size());
    return tensor(name, 0, std::move(dims), std::move(d));
  }

  std::vector<uint8_t> build() const {
    GgufBytes out;
    out.b = {'G', 'G', 'U', 'F'};
    out.put<uint32_t>(version).put<uint64_t>(tensors.size()).put<uint64_t>(kvs.size());
    for (const auto& [k, v] : kvs) out.str(k).raw(v);
    std::vector<uint64_t> offsets;
    uint64_t off = 0;
    for (const auto& t : tensors) {
      off = (off + alignment - 1) / alignment * alignment;
      offsets.push_back(t.offset ? *t.offset : off);
      off += t.data.size();
    }
    for (size_t i = 0; i < tensors.size(); ++i) {
      const auto& t = tensors[i];
      out.str(t.name).put<uint32_t>(static_cast<uint32_t>(t.dims.size()));
      for (uint64_t d : t.dims) out.put<uint64_t>(d);
      out.put<uint32_t>(t.type).put<uint64_t>(offsets[i]);
    }
    while (out.b.size() % alignment) out.b.push_back(0);
    const size_t data_start = out.b.size();
    for (size_t i = 0; i < tensors.size(); ++i) {
      // An overridden offset far past the packed data is left unwritten (the file stays small).
      if ((tensors[i].offset && offsets[i] > off) || tensors[i].data.empty()) continue;
      const size_t at = data_start + offsets[i];
      if (out.b.size() < at + tensors[i].data.size()) out.b.resize(at + tensors[i].data.size(), 0);
      std::memcpy(out.b.data() + at, tensors[i].data.data(), tensors[i].data.size());
    }
    return out.b;
  }
};

inline void write_bytes(const std::filesystem::path& p, const std::vector<uint8_t>& b) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

}  // namespace resp::test
