#include "ckpt/safetensors_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"

namespace resp {

namespace fs = std::filesystem;

namespace {

std::string sys_err() {
  return std::strerror(errno);
}

constexpr size_t kBufferBytes = size_t{8} << 20;

std::atomic<size_t> g_shard_limit_override{0};

// A file written through a large buffer; every failure is an IoError naming the file.
class FileSink final : public ByteSink {
 public:
  explicit FileSink(const fs::path& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) throw IoError(cat("cannot create ", path.string(), ": ", sys_err()));
    buf_.reserve(kBufferBytes);
  }
  ~FileSink() override {
    if (fd_ >= 0) ::close(fd_);
  }
  FileSink(const FileSink&) = delete;
  FileSink& operator=(const FileSink&) = delete;

  void write(const void* data, size_t n) override {
    const auto* p = static_cast<const uint8_t*>(data);
    written_ += n;
    if (buf_.size() + n <= kBufferBytes) {
      buf_.insert(buf_.end(), p, p + n);
      return;
    }
    flush_buffer();
    if (n >= kBufferBytes) {
      write_fully(p, n);
    } else {
      buf_.insert(buf_.end(), p, p + n);
    }
  }
  size_t written() const { return written_; }

  // Flushes, fsyncs and closes.
  void finish() {
    flush_buffer();
    if (::fsync(fd_) != 0) throw IoError(cat("cannot sync ", path_.string(), ": ", sys_err()));
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) throw IoError(cat("cannot close ", path_.string(), ": ", sys_err()));
  }

 private:
  void flush_buffer() {
    write_fully(buf_.data(), buf_.size());
    buf_.clear();
  }
  void write_fully(const uint8_t* p, size_t n) {
    while (n > 0) {
      const ssize_t w = ::write(fd_, p, std::min<size_t>(n, size_t{1} << 30));
      if (w < 0) {
        if (errno == EINTR) continue;
        throw IoError(cat("cannot write ", path_.string(), ": ", sys_err()));
      }
      p += w;
      n -= static_cast<size_t>(w);
    }
  }

  fs::path path_;
  int fd_ = -1;
  std::vector<uint8_t> buf_;
  size_t written_ = 0;
};

// Counts what one tensor's fill writes and forwards it.
class CountingSink final : public ByteSink {
 public:
  explicit CountingSink(ByteSink& out) : out_(out) {}
  void write(const void* data, size_t n) override {
    count_ += n;
    out_.write(data, n);
  }
  size_t count() const { return count_; }

 private:
  ByteSink& out_;
  size_t count_ = 0;
};

std::string shard_name(size_t k, size_t n) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", k, n);
  return buf;
}

}  // namespace

ScopedMaxShardBytes::ScopedMaxShardBytes(size_t bytes)
    : previous_(g_shard_limit_override.exchange(bytes)) {}
ScopedMaxShardBytes::~ScopedMaxShardBytes() {
  g_shard_limit_override.store(previous_);
}

size_t default_max_shard_bytes() {
  const size_t o = g_shard_limit_override.load();
  return o ? o : kDefaultMaxShardBytes;
}

void ByteSink::zeros(size_t n) {
  static const std::vector<uint8_t> kZeros(size_t{64} << 10, 0);
  while (n > 0) {
    const size_t k = std::min(n, kZeros.size());
    write(kZeros.data(), k);
    n -= k;
  }
}

size_t TensorEntry::nbytes() const {
  size_t n = dtype_size(dtype);
  for (int64_t d : shape) n *= static_cast<size_t>(d);
  return n;
}

std::string safetensors_dtype_name(DType t) {
  return std::string(dtype_name(t));
}

void write_safetensors_file(const fs::path& path, const std::vector<TensorEntry>& tensors,
                            const std::map<std::string, std::string>& metadata) {
  // Data layout: larger elements first (keeps every tensor aligned to its element size), else
  // in the given order.
  std::vector<size_t> order(tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return dtype_size(tensors[a].dtype) > dtype_size(tensors[b].dtype);
  });

  nlohmann::json header = nlohmann::json::object();
  std::set<std::string> seen;
  size_t offset = 0;
  for (size_t i : order) {
    const TensorEntry& t = tensors[i];
    if (t.name.empty() || t.name == "__metadata__" || !seen.insert(t.name).second)
      throw ShapeError(cat(path.string(), ": invalid or duplicate tensor name \"", t.name, "\""));
    for (int64_t d : t.shape)
      if (d < 0)
        throw ShapeError(cat(path.string(), ": tensor \"", t.name, "\" has a negative dim"));
    const size_t n = t.nbytes();
    header[t.name] = {{"dtype", safetensors_dtype_name(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string hs = header.dump();
  while (hs.size() % 8 != 0) hs += ' ';

  fs::path tmp = path;
  tmp += ".tmp";
  try {
    FileSink file(tmp);
    uint8_t len[8];
    const uint64_t hn = hs.size();
    for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>((hn >> (8 * i)) & 0xff);
    file.write(len, 8);
    file.write(hs.data(), hs.size());
    for (size_t i : order) {
      const TensorEntry& t = tensors[i];
      CountingSink counted(file);
      if (t.fill) t.fill(counted);
      if (counted.count() != t.nbytes())
        throw ShapeError(cat(path.string(), ": tensor \"", t.name, "\" produced ", counted.count(),
                             " bytes, its header announces ", t.nbytes()));
    }
    if (file.written() != 8 + hs.size() + offset)
      throw ShapeError(cat(path.string(), ": wrote ", file.written(), " bytes, expected ",
                           8 + hs.size() + offset));
    file.finish();
    std::error_code ec;
    fs::rename(tmp, path, ec);
    if (ec)
      throw IoError(cat("cannot rename ", tmp.string(), " to ", path.string(), ": ", ec.message()));
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
}

std::vector<std::string> write_safetensors_model(const fs::path& dir,
                                                 const std::vector<TensorEntry>& tensors,
                                                 size_t max_shard_bytes) {
  if (max_shard_bytes == 0) max_shard_bytes = default_max_shard_bytes();
  // Greedy split in the given order (what transformers' save_pretrained does).
  std::vector<std::vector<size_t>> shards;
  size_t current = 0, total = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const size_t n = tensors[i].nbytes();
    if (shards.empty() || (current > 0 && current + n > max_shard_bytes)) {
      shards.emplace_back();
      current = 0;
    }
    shards.back().push_back(i);
    current += n;
    total += n;
  }
  if (shards.empty()) shards.emplace_back();

  std::vector<std::string> files;
  if (shards.size() == 1) {
    write_safetensors_file(dir / "model.safetensors", tensors);
    files.push_back("model.safetensors");
    return files;
  }
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  for (size_t k = 0; k < shards.size(); ++k) {
    const std::string name = shard_name(k + 1, shards.size());
    std::vector<TensorEntry> part;
    part.reserve(shards[k].size());
    for (size_t i : shards[k]) {
      part.push_back(tensors[i]);
      weight_map[tensors[i].name] = name;
    }
    write_safetensors_file(dir / name, part);
    files.push_back(name);
  }
  nlohmann::ordered_json index;
  index["metadata"] = {{"total_size", total}};
  index["weight_map"] = weight_map;
  write_text_atomic(dir / "model.safetensors.index.json", index.dump(2) + "\n");
  files.push_back("model.safetensors.index.json");
  return files;
}

void write_text_atomic(const fs::path& path, const std::string& text) {
  fs::path tmp = path;
  tmp += ".tmp";
  {
    FileSink f(tmp);
    f.write(text.data(), text.size());
    f.finish();
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw IoError(cat("cannot rename ", tmp.string(), " to ", path.string()));
  }
}

}  // namespace resp
