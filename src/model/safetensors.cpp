#include "model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"

namespace resp {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {
constexpr uint64_t kMaxHeader = 100ull << 20;  // the format's own limit is 100 MB

std::string sys_err() {
  return std::strerror(errno);
}
}  // namespace

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string TensorInfo::shape_str() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

SafetensorsFile::SafetensorsFile(const fs::path& path) : path_(path) {
  const std::string p = path.string();
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw IoError(cat("cannot open ", p, ": ", sys_err()));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw IoError(cat("cannot stat ", p, ": ", sys_err()));
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ < 8) {
    ::close(fd);
    throw FormatError(cat(p, ": truncated safetensors file (", size_, " bytes, no header)"));
  }
  void* m = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (m == MAP_FAILED) throw IoError(cat("cannot mmap ", p, ": ", sys_err()));
  base_ = static_cast<const uint8_t*>(m);

  try {
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | base_[i];
    if (header_len > kMaxHeader)
      throw FormatError(cat(p, ": header length ", header_len, " exceeds the 100 MB limit"));
    if (8 + header_len > size_)
      throw FormatError(cat(p, ": header length ", header_len, " runs past the end of the file (",
                            size_, " bytes): truncated file?"));
    // The reference reader's rules: the header starts with '{' (only trailing space padding),
    // holds each name once, and the tensors tile the data section exactly (below). A header
    // length that is off by a few bytes then fails instead of reading every tensor shifted.
    const char* hb = reinterpret_cast<const char*>(base_ + 8);
    if (header_len == 0 || hb[0] != '{')
      throw FormatError(cat(p, ": header does not start with '{' (not a safetensors file?)"));
    json h;
    std::string duplicate;
    std::set<std::string> top_keys;
    try {
      h = json::parse(hb, hb + header_len, [&](int depth, json::parse_event_t event, json& parsed) {
        if (event == json::parse_event_t::key && depth == 1 &&
            !top_keys.insert(parsed.get<std::string>()).second && duplicate.empty())
          duplicate = parsed.get<std::string>();
        return true;
      });
    } catch (const json::exception& e) {
      throw FormatError(cat(p, ": malformed header JSON (", e.what(), ")"));
    }
    if (!h.is_object()) throw FormatError(cat(p, ": header is not a JSON object"));
    if (!duplicate.empty())
      throw FormatError(cat(p, ": tensor \"", duplicate, "\" appears twice in the header"));
    if (auto meta = h.find("__metadata__"); meta != h.end()) {
      if (!meta->is_object()) throw FormatError(cat(p, ": __metadata__ is not an object"));
      for (const auto& v : *meta)
        if (!v.is_string()) throw FormatError(cat(p, ": __metadata__ values must be strings"));
    }
    const size_t data_start = 8 + header_len;
    const size_t data_size = size_ - data_start;
    std::vector<std::pair<size_t, size_t>> ranges;
    for (auto it = h.begin(); it != h.end(); ++it) {
      if (it.key() == "__metadata__") continue;
      const std::string where = cat(p, ": tensor \"", it.key(), "\"");
      const json& e = it.value();
      if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") ||
          !e.contains("data_offsets"))
        throw FormatError(cat(where, ": entry needs dtype, shape and data_offsets"));
      if (!e["dtype"].is_string()) throw FormatError(cat(where, ": dtype is not a string"));
      TensorInfo t;
      t.name = it.key();
      try {
        t.dtype = parse_safetensors_dtype(e["dtype"].get<std::string>());
      } catch (const FormatError& err) {
        throw FormatError(cat(where, ": ", err.what()));
      }
      if (!e["shape"].is_array() || e["shape"].size() > 8)
        throw FormatError(cat(where, ": shape must be an array of at most 8 dims"));
      constexpr uint64_t kMaxNumel = 1ull << 48;
      uint64_t numel = 1;
      for (const auto& d : e["shape"]) {
        if (!d.is_number_unsigned())
          throw FormatError(cat(where, ": shape has a non-integer or negative dim"));
        const uint64_t dim = d.get<uint64_t>();
        if (dim > kMaxNumel || (dim != 0 && numel > kMaxNumel / dim))
          throw FormatError(cat(where, ": shape is absurdly large"));
        numel *= dim;
        t.shape.push_back(static_cast<int64_t>(dim));
      }
      const json& off = e["data_offsets"];
      if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
          !off[1].is_number_unsigned())
        throw FormatError(cat(where, ": data_offsets must be [begin, end]"));
      const uint64_t b = off[0].get<uint64_t>(), en = off[1].get<uint64_t>();
      if (b > en || en > data_size)
        throw FormatError(cat(where, ": data_offsets [", b, ", ", en,
                              ") outside the data section of ", data_size,
                              " bytes (truncated file?)"));
      const uint64_t expect = numel * dtype_size(t.dtype);
      if (en - b != expect)
        throw FormatError(cat(where, ": data_offsets span ", en - b, " bytes but shape ",
                              t.shape_str(), " x ", dtype_name(t.dtype), " needs ", expect));
      t.offset = data_start + b;
      t.nbytes = en - b;
      ranges.emplace_back(b, en);
      tensors_[t.name] = std::move(t);
    }
    std::sort(ranges.begin(), ranges.end());
    size_t covered = 0;
    for (const auto& [b, e] : ranges) {
      if (b < covered) throw FormatError(cat(p, ": tensor data ranges overlap at byte ", b));
      if (b > covered)
        throw FormatError(cat(p, ": ", b - covered, " unused bytes in the data section at byte ",
                              covered, " (header length or offsets wrong?)"));
      covered = e;
    }
    if (covered != data_size)
      throw FormatError(cat(p, ": the tensors cover ", covered, " of the data section's ",
                            data_size, " bytes (trailing data, or a wrong header length)"));
  } catch (...) {
    ::munmap(const_cast<uint8_t*>(base_), size_);
    base_ = nullptr;
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (base_) ::munmap(const_cast<uint8_t*>(base_), size_);
}

CheckpointReader::CheckpointReader(const fs::path& dir) : dir_(dir) {
  const fs::path single = dir / "model.safetensors";
  const fs::path index = dir / "model.safetensors.index.json";
  std::vector<fs::path> paths;
  if (fs::exists(index)) {
    std::ifstream in(index);
    if (!in) throw IoError(cat("cannot open ", index.string()));
    json j;
    try {
      j = json::parse(in);
    } catch (const json::exception& e) {
      throw FormatError(cat(index.string(), ": malformed JSON (", e.what(), ")"));
    }
    if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
      throw FormatError(cat(index.string(), ": missing \"weight_map\" object"));
    std::set<std::string> files;
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      if (!it.value().is_string())
        throw FormatError(
            cat(index.string(), ": weight_map[\"", it.key(), "\"] is not a file name"));
      const std::string f = it.value().get<std::string>();
      if (f.find('/') != std::string::npos || f.find("..") != std::string::npos)
        throw FormatError(
            cat(index.string(), ": shard name \"", f, "\" must be a plain file name"));
      files.insert(f);
    }
    for (const auto& f : files) paths.push_back(dir / f);
    // Names must come from the shard the index names.
    for (const auto& p : paths) {
      files_.push_back(std::make_unique<SafetensorsFile>(p));
      const size_t fi = files_.size() - 1;
      for (const auto& [name, t] : files_.back()->tensors()) {
        auto wm = j["weight_map"].find(name);
        if (wm == j["weight_map"].end() || wm->get<std::string>() != p.filename().string())
          continue;
        TensorInfo ti = t;
        ti.file_index = fi;
        index_[name] = ti;
      }
    }
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it)
      if (!index_.count(it.key()))
        throw FormatError(cat(index.string(), ": tensor \"", it.key(),
                              "\" listed in weight_map is not in ", it.value().get<std::string>()));
  } else if (fs::exists(single)) {
    files_.push_back(std::make_unique<SafetensorsFile>(single));
    for (const auto& [name, t] : files_.back()->tensors()) index_[name] = t;
  } else {
    if (!fs::exists(dir)) throw IoError(cat("model directory ", dir.string(), " does not exist"));
    throw IoError(cat(dir.string(), ": no model.safetensors or model.safetensors.index.json"));
  }
}

const TensorInfo& CheckpointReader::info(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) throw FormatError(cat(dir_.string(), ": missing tensor \"", name, "\""));
  return it->second;
}

std::vector<std::string> CheckpointReader::names() const {
  std::vector<std::string> n;
  for (const auto& [k, v] : index_) n.push_back(k);
  return n;
}

std::string CheckpointReader::file_of(const std::string& name) const {
  return files_[info(name).file_index]->path().string();
}

void CheckpointReader::expect_shape(const std::string& name,
                                    const std::vector<int64_t>& shape) const {
  const TensorInfo& t = info(name);
  if (t.shape != shape) {
    TensorInfo want;
    want.shape = shape;
    throw FormatError(cat(file_of(name), ": tensor \"", name, "\" has shape ", t.shape_str(),
                          ", expected ", want.shape_str(), " from config.json"));
  }
}

const uint8_t* CheckpointReader::ptr(const TensorInfo& t) const {
  return files_[t.file_index]->data() + t.offset;
}

void CheckpointReader::read(const std::string& name, float* out) const {
  const TensorInfo& t = info(name);
  convert_to_f32(t.dtype, ptr(t), out, static_cast<size_t>(t.numel()));
}

void CheckpointReader::read_rows(const std::string& name, std::span<const int> rows,
                                 float* out) const {
  const TensorInfo& t = info(name);
  if (t.shape.empty() || t.shape.size() > 2)
    throw FormatError(cat(file_of(name), ": read_rows on \"", name, "\" of shape ", t.shape_str()));
  const int64_t n_rows = t.shape[0];
  const size_t row_len = t.shape.size() == 2 ? static_cast<size_t>(t.shape[1]) : 1;
  const size_t es = dtype_size(t.dtype);
  const uint8_t* base = ptr(t);
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i] < 0 || rows[i] >= n_rows)
      throw FormatError(
          cat(file_of(name), ": row ", rows[i], " outside tensor \"", name, "\" ", t.shape_str()));
    convert_to_f32(t.dtype, base + static_cast<size_t>(rows[i]) * row_len * es, out + i * row_len,
                   row_len);
  }
}

void CheckpointReader::read_cols(const std::string& name, std::span<const int> cols,
                                 float* out) const {
  const TensorInfo& t = info(name);
  if (t.shape.size() != 2)
    throw FormatError(cat(file_of(name), ": read_cols on \"", name, "\" of shape ", t.shape_str()));
  const size_t n_rows = static_cast<size_t>(t.shape[0]), n_cols = static_cast<size_t>(t.shape[1]);
  for (int c : cols)
    if (c < 0 || static_cast<size_t>(c) >= n_cols)
      throw FormatError(
          cat(file_of(name), ": column ", c, " outside tensor \"", name, "\" ", t.shape_str()));
  const size_t es = dtype_size(t.dtype);
  const uint8_t* base = ptr(t);
  // A TP shard's columns are one contiguous run: convert only that run of each row.
  bool contiguous = !cols.empty();
  for (size_t i = 1; i < cols.size() && contiguous; ++i) contiguous = cols[i] == cols[i - 1] + 1;
  if (contiguous) {
    const size_t c0 = static_cast<size_t>(cols[0]);
    for (size_t r = 0; r < n_rows; ++r)
      convert_to_f32(t.dtype, base + (r * n_cols + c0) * es, out + r * cols.size(), cols.size());
    return;
  }
  std::vector<float> row(n_cols);
  for (size_t r = 0; r < n_rows; ++r) {
    convert_to_f32(t.dtype, base + r * n_cols * es, row.data(), n_cols);
    for (size_t i = 0; i < cols.size(); ++i)
      out[r * cols.size() + i] = row[static_cast<size_t>(cols[i])];
  }
}

}  // namespace resp
