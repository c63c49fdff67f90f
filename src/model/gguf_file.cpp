#include "model/gguf_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <utility>

#include "core/error.h"

namespace resp {

namespace fs = std::filesystem;

namespace {

constexpr uint32_t kMaxDims = 4;            // GGML_MAX_DIMS
constexpr size_t kMaxTensorName = 63;       // GGML_MAX_NAME - 1 (llama.cpp's limit)
constexpr uint64_t kMaxKeyLength = 65535;   // the spec's limit on keys
constexpr uint64_t kMaxNumel = 1ull << 48;  // far beyond any model, far below overflow
constexpr int kMaxArrayDepth = 8;
constexpr uint64_t kMaxAlignment = 1ull << 30;

std::string sys_err() {
  return std::strerror(errno);
}

bool known_value_type(uint32_t t) {
  return t <= static_cast<uint32_t>(GgufType::F64);
}

// Size of a fixed-size value type; 0 for String and Array.
size_t scalar_size(GgufType t) {
  switch (t) {
    case GgufType::U8:
    case GgufType::I8:
    case GgufType::Bool:
      return 1;
    case GgufType::U16:
    case GgufType::I16:
      return 2;
    case GgufType::U32:
    case GgufType::I32:
    case GgufType::F32:
      return 4;
    case GgufType::U64:
    case GgufType::I64:
    case GgufType::F64:
      return 8;
    case GgufType::String:
    case GgufType::Array:
      return 0;
  }
  return 0;
}

// Bounded little-endian reads over the mapped file; running past the end is a FormatError that
// names the file, what was being read and where.
class Cursor {
 public:
  Cursor(const uint8_t* base, size_t size, size_t pos, std::string file)
      : base_(base), size_(size), pos_(pos), file_(std::move(file)) {}

  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }

  [[noreturn]] void fail(const std::string& what) const {
    throw FormatError(cat(file_, ": ", what));
  }

  void need(uint64_t n, const std::string& what) const {
    if (n > remaining())
      fail(cat(what, " at byte ", pos_, " needs ", n, " bytes but the file ends at byte ", size_,
               " (truncated file?)"));
  }
  template <typename T>
  T read(const std::string& what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, base_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  void skip(uint64_t n, const std::string& what) {
    need(n, what);
    pos_ += static_cast<size_t>(n);
  }
  // A GGUF string: u64 length, then the bytes (not NUL-terminated).
  std::string read_string(const std::string& what, uint64_t max_len) {
    const auto len = read<uint64_t>(what + " length");
    if (len > max_len) fail(cat(what, " length ", len, " exceeds the limit of ", max_len));
    need(len, what);
    std::string s(reinterpret_cast<const char*>(base_ + pos_), static_cast<size_t>(len));
    pos_ += static_cast<size_t>(len);
    return s;
  }
  void skip_string(const std::string& what) {
    const auto len = read<uint64_t>(what + " length");
    skip(len, what);
  }

 private:
  const uint8_t* base_;
  size_t size_;
  size_t pos_;
  std::string file_;
};

GgufType read_value_type(Cursor& c, const std::string& what) {
  const auto t = c.read<uint32_t>(what);
  if (!known_value_type(t)) c.fail(cat(what, " ", t, " is not a GGUF value type (0..12)"));
  return static_cast<GgufType>(t);
}

// Reads a scalar of type `t` into v (strings included).
void read_scalar(Cursor& c, GgufType t, GgufValue& v, const std::string& what) {
  v.type = t;
  switch (t) {
    case GgufType::U8:
      v.i = c.read<uint8_t>(what);
      return;
    case GgufType::I8:
      v.i = static_cast<int64_t>(c.read<int8_t>(what));  // sign-extended on purpose
      return;
    case GgufType::U16:
      v.i = c.read<uint16_t>(what);
      return;
    case GgufType::I16:
      v.i = c.read<int16_t>(what);
      return;
    case GgufType::U32:
      v.i = c.read<uint32_t>(what);
      return;
    case GgufType::I32:
      v.i = c.read<int32_t>(what);
      return;
    case GgufType::U64:
      v.u = c.read<uint64_t>(what);
      v.i = v.u > static_cast<uint64_t>(INT64_MAX) ? INT64_MAX : static_cast<int64_t>(v.u);
      return;
    case GgufType::I64:
      v.i = c.read<int64_t>(what);
      return;
    case GgufType::F32:
      v.f = c.read<float>(what);
      return;
    case GgufType::F64:
      v.f = c.read<double>(what);
      return;
    case GgufType::Bool: {
      const auto b = c.read<uint8_t>(what);
      if (b > 1) c.fail(cat(what, ": bool byte ", static_cast<int>(b), " is neither 0 nor 1"));
      v.b = b != 0;
      return;
    }
    case GgufType::String:
      v.s = c.read_string(what, c.remaining());
      return;
    case GgufType::Array:
      break;
  }
  c.fail(cat(what, ": not a scalar type"));
}

// Walks (and so validates) the elements of an array whose header has been read.
void walk_array(Cursor& c, GgufType elem, uint64_t count, int depth, const std::string& what) {
  if (elem == GgufType::Array) {
    if (depth >= kMaxArrayDepth)
      c.fail(cat(what, ": arrays nested deeper than ", kMaxArrayDepth, " levels"));
    // Every nested array takes at least 12 bytes (type + count).
    if (count > c.remaining() / 12)
      c.fail(cat(what, ": ", count, " nested arrays cannot fit in the ", c.remaining(),
                 " bytes left (truncated or corrupt count)"));
    for (uint64_t k = 0; k < count; ++k) {
      const GgufType t = read_value_type(c, what + " element type");
      const auto n = c.read<uint64_t>(what + " element count");
      walk_array(c, t, n, depth + 1, what);
    }
    return;
  }
  if (elem == GgufType::String) {
    if (count > c.remaining() / 8)
      c.fail(cat(what, ": ", count, " strings cannot fit in the ", c.remaining(),
                 " bytes left (truncated or corrupt count)"));
    for (uint64_t k = 0; k < count; ++k) c.skip_string(cat(what, "[", k, "]"));
    return;
  }
  if (elem == GgufType::Bool) {
    if (count > c.remaining())
      c.fail(cat(what, ": ", count, " bools cannot fit in the ", c.remaining(), " bytes left"));
    for (uint64_t k = 0; k < count; ++k) {
      GgufValue v;
      read_scalar(c, GgufType::Bool, v, cat(what, "[", k, "]"));
    }
    return;
  }
  const size_t es = scalar_size(elem);
  if (count > c.remaining() / es)
    c.fail(cat(what, ": ", count, " elements of ", es, " bytes cannot fit in the ", c.remaining(),
               " bytes left (truncated or corrupt count)"));
  c.skip(count * es, what);
}

// Reads a value of type t (arrays: header + a validating walk).
GgufValue read_value(Cursor& c, GgufType t, const std::string& what) {
  GgufValue v;
  if (t != GgufType::Array) {
    read_scalar(c, t, v, what);
    return v;
  }
  v.type = GgufType::Array;
  v.elem_type = read_value_type(c, what + " element type");
  v.count = c.read<uint64_t>(what + " element count");
  v.offset = c.pos();
  walk_array(c, v.elem_type, v.count, 1, what);
  return v;
}

}  // namespace

std::string gguf_type_name(GgufType t) {
  static const char* const kNames[] = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                       "bool", "string", "array", "u64", "i64", "f64"};
  const auto i = static_cast<uint32_t>(t);
  return i < 13 ? kNames[i] : cat("type ", i);
}

bool GgufValue::is_integer() const {
  switch (type) {
    case GgufType::U8:
    case GgufType::I8:
    case GgufType::U16:
    case GgufType::I16:
    case GgufType::U32:
    case GgufType::I32:
    case GgufType::U64:
    case GgufType::I64:
      return true;
    default:
      return false;
  }
}

int64_t GgufTensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

std::vector<int64_t> GgufTensorInfo::torch_shape() const {
  return std::vector<int64_t>(dims.rbegin(), dims.rend());
}

std::string GgufTensorInfo::shape_str() const {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

GgufFile::GgufFile(const fs::path& path) : path_(path) {
  const std::string p = path.string();
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw IoError(cat("cannot open ", p, ": ", sys_err()));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw IoError(cat("cannot stat ", p, ": ", sys_err()));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw IoError(cat(p, " is not a regular file"));
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ < 24) {
    ::close(fd);
    throw FormatError(cat(p, ": truncated GGUF file (", size_, " bytes, the header alone is 24)"));
  }
  void* m = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (m == MAP_FAILED) throw IoError(cat("cannot mmap ", p, ": ", sys_err()));
  base_ = static_cast<const uint8_t*>(m);

  try {
    Cursor c(base_, size_, 0, p);
    if (std::memcmp(base_, "GGUF", 4) != 0) {
      std::string magic;
      for (int i = 0; i < 4; ++i) {
        const char ch = static_cast<char>(base_[i]);
        magic +=
            (ch >= 0x20 && ch < 0x7f) ? std::string(1, ch) : cat("\\x", static_cast<int>(base_[i]));
      }
      throw FormatError(cat(p, ": not a GGUF file (magic \"", magic, "\", expected \"GGUF\")"));
    }
    c.skip(4, "magic");
    version_ = c.read<uint32_t>("version");
    if (version_ == 0x01000000u || version_ == 0x02000000u || version_ == 0x03000000u)
      throw UnsupportedError(cat(p, ": big-endian GGUF files are not supported"));
    if (version_ == 1)
      throw UnsupportedError(cat(p,
                                 ": GGUF version 1 is not supported (re-convert the model "
                                 "with a current llama.cpp; versions 2 and 3 are read)"));
    if (version_ != 2 && version_ != 3)
      throw FormatError(cat(p, ": unknown GGUF version ", version_, " (supported: 2, 3)"));
    const auto n_tensors = c.read<uint64_t>("tensor count");
    const auto n_kv = c.read<uint64_t>("metadata count");
    // The smallest metadata entry takes 14 bytes (1-byte key, type, 1-byte value); the smallest
    // tensor info 25 (1-byte name, n_dims, one dim, type, offset).
    if (n_kv > c.remaining() / 14)
      c.fail(cat("metadata count ", n_kv, " cannot fit in a file of ", size_,
                 " bytes (corrupt header)"));
    if (n_tensors > c.remaining() / 25)
      c.fail(cat("tensor count ", n_tensors, " cannot fit in a file of ", size_,
                 " bytes (corrupt header)"));

    for (uint64_t k = 0; k < n_kv; ++k) {
      const std::string where = cat("metadata entry ", k);
      std::string key = c.read_string(where + " key", kMaxKeyLength);
      if (key.empty()) c.fail(cat(where, " has an empty key"));
      const std::string what = cat("metadata \"", key, "\"");
      const GgufType t = read_value_type(c, what + " value type");
      GgufValue v = read_value(c, t, what);
      if (!metadata_.emplace(key, std::move(v)).second)
        c.fail(cat("duplicate metadata key \"", key, "\""));
    }

    if (const GgufValue* a = find("general.alignment")) {
      if (!a->is_integer() || a->i <= 0 || static_cast<uint64_t>(a->i) > kMaxAlignment ||
          (a->i & (a->i - 1)) != 0)
        c.fail(cat("general.alignment must be a power of two up to 2^30 (got ",
                   a->is_integer() ? std::to_string(a->i) : gguf_type_name(a->type), ")"));
      alignment_ = static_cast<size_t>(a->i);
    }

    tensors_.reserve(static_cast<size_t>(n_tensors));
    for (uint64_t k = 0; k < n_tensors; ++k) {
      GgufTensorInfo t;
      t.name = c.read_string(cat("tensor info ", k, " name"), kMaxTensorName);
      if (t.name.empty()) c.fail(cat("tensor info ", k, " has an empty name"));
      const std::string what = cat("tensor \"", t.name, "\"");
      const auto n_dims = c.read<uint32_t>(what + " n_dims");
      if (n_dims < 1 || n_dims > kMaxDims)
        c.fail(cat(what, " has ", n_dims, " dims (ggml allows 1..", kMaxDims, ")"));
      uint64_t numel = 1;
      for (uint32_t d = 0; d < n_dims; ++d) {
        const auto dim = c.read<uint64_t>(what + " dim");
        if (dim == 0 || dim > kMaxNumel || numel > kMaxNumel / dim)
          c.fail(cat(what, " has an impossible dim ", dim));
        numel *= dim;
        t.dims.push_back(static_cast<int64_t>(dim));
      }
      t.type = c.read<uint32_t>(what + " type");
      const GgmlTypeTraits* tr = ggml_type_traits(t.type);
      if (!tr) c.fail(cat(what, " has unknown ggml type ", t.type));
      if (t.dims[0] % tr->block_size != 0)
        c.fail(cat(what, " has rows of ", t.dims[0], " elements, not a multiple of the ", tr->name,
                   " block size ", tr->block_size));
      const auto rel = c.read<uint64_t>(what + " offset");
      if (rel % alignment_ != 0)
        c.fail(cat(what, " offset ", rel, " is not a multiple of the alignment ", alignment_));
      t.nbytes = static_cast<size_t>(numel / static_cast<uint64_t>(tr->block_size) * tr->type_size);
      t.offset = static_cast<size_t>(rel);  // relative until the data section is known
      if (!tensor_index_.emplace(t.name, tensors_.size()).second)
        c.fail(cat("duplicate tensor name \"", t.name, "\""));
      tensors_.push_back(std::move(t));
    }

    // The data section starts at the next multiple of the alignment.
    const size_t header_end = c.pos();
    const size_t pad = (alignment_ - header_end % alignment_) % alignment_;
    data_offset_ = header_end + pad;
    if (tensors_.empty()) {
      data_offset_ = std::min(data_offset_, size_);
    } else if (data_offset_ > size_) {
      c.fail(cat("the data section would start at byte ", data_offset_,
                 ", past the end of the file (", size_, " bytes): truncated file?"));
    }
    const size_t data_size = size_ - data_offset_;
    std::vector<std::pair<size_t, size_t>> ranges;
    ranges.reserve(tensors_.size());
    for (GgufTensorInfo& t : tensors_) {
      if (t.offset > data_size || t.nbytes > data_size - t.offset)
        c.fail(cat("tensor \"", t.name, "\" (", ggml_type_name(t.type), " ", t.shape_str(), ", ",
                   t.nbytes, " bytes at data offset ", t.offset,
                   ") runs past the end of the data section of ", data_size,
                   " bytes (truncated file?)"));
      ranges.emplace_back(t.offset, t.offset + t.nbytes);
      t.offset += data_offset_;
    }
    std::sort(ranges.begin(), ranges.end());
    for (size_t i = 1; i < ranges.size(); ++i)
      if (ranges[i].first < ranges[i - 1].second)
        c.fail(cat("tensor data ranges overlap at data offset ", ranges[i].first));
  } catch (...) {
    ::munmap(const_cast<uint8_t*>(base_), size_);
    base_ = nullptr;
    throw;
  }
}

GgufFile::~GgufFile() {
  if (base_) ::munmap(const_cast<uint8_t*>(base_), size_);
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = metadata_.find(key);
  return it == metadata_.end() ? nullptr : &it->second;
}

namespace {
[[noreturn]] void wrong_type(const fs::path& p, const std::string& key, const GgufValue& v,
                             const char* want) {
  throw FormatError(cat(p.string(), ": metadata \"", key, "\" is ",
                        v.type == GgufType::Array ? cat("an array of ", gguf_type_name(v.elem_type))
                                                  : cat("a ", gguf_type_name(v.type)),
                        ", expected ", want));
}
}  // namespace

std::optional<int64_t> GgufFile::get_int(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (!v->is_integer()) wrong_type(path_, key, *v, "an integer");
  if (v->type == GgufType::U64 && v->u > static_cast<uint64_t>(INT64_MAX))
    throw FormatError(cat(path_.string(), ": metadata \"", key, "\" = ", v->u, " is out of range"));
  return v->i;
}

std::optional<uint64_t> GgufFile::get_uint(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (!v->is_integer()) wrong_type(path_, key, *v, "an integer");
  if (v->type == GgufType::U64) return v->u;
  if (v->i < 0)
    throw FormatError(cat(path_.string(), ": metadata \"", key, "\" = ", v->i, " is negative"));
  return static_cast<uint64_t>(v->i);
}

std::optional<double> GgufFile::get_float(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->is_float()) return v->f;
  if (v->is_integer())
    return v->type == GgufType::U64 ? static_cast<double>(v->u) : static_cast<double>(v->i);
  wrong_type(path_, key, *v, "a number");
}

std::optional<bool> GgufFile::get_bool(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufType::Bool) wrong_type(path_, key, *v, "a bool");
  return v->b;
}

std::optional<std::string> GgufFile::get_string(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufType::String) wrong_type(path_, key, *v, "a string");
  return v->s;
}

std::vector<GgufValue> GgufFile::array_items(const GgufValue& a) const {
  if (a.type != GgufType::Array) throw ShapeError("array_items on a value that is not an array");
  const std::string p = path_.string();
  Cursor c(base_, size_, a.offset, p);
  std::vector<GgufValue> items;
  items.reserve(static_cast<size_t>(a.count));  // bounded by the walk at open
  for (uint64_t k = 0; k < a.count; ++k)
    items.push_back(read_value(c, a.elem_type, "array element"));
  return items;
}

std::optional<std::vector<std::string>> GgufFile::get_string_array(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufType::Array || v->elem_type != GgufType::String)
    wrong_type(path_, key, *v, "an array of strings");
  std::vector<std::string> out;
  out.reserve(static_cast<size_t>(v->count));
  Cursor c(base_, size_, v->offset, path_.string());
  for (uint64_t k = 0; k < v->count; ++k) out.push_back(c.read_string("string", c.remaining()));
  return out;
}

std::optional<std::vector<int64_t>> GgufFile::get_int_array(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  GgufValue probe;
  probe.type = v->elem_type;
  if (v->type != GgufType::Array || !probe.is_integer())
    wrong_type(path_, key, *v, "an array of integers");
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(v->count));
  Cursor c(base_, size_, v->offset, path_.string());
  for (uint64_t k = 0; k < v->count; ++k) {
    GgufValue e;
    read_scalar(c, v->elem_type, e, key);
    if (e.type == GgufType::U64 && e.u > static_cast<uint64_t>(INT64_MAX))
      throw FormatError(cat(path_.string(), ": metadata \"", key, "\"[", k, "] is out of range"));
    out.push_back(e.i);
  }
  return out;
}

const GgufTensorInfo* GgufFile::tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

void GgufFile::dequantize_rows(const GgufTensorInfo& t, int64_t row_begin, int64_t n_rows,
                               float* out) const {
  const GgmlTypeTraits* tr = ggml_type_traits(t.type);
  if (!tr) throw FormatError(cat(path_.string(), ": tensor \"", t.name, "\" has unknown type"));
  if (!tr->dequantizable)
    throw UnsupportedError(cat(path_.string(), ": tensor \"", t.name, "\" is ", tr->name,
                               ", which resp cannot dequantize (supported: F32, F16, BF16, Q4_0, "
                               "Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K)"));
  RESP_CHECK_SHAPE(row_begin >= 0 && n_rows >= 0 && row_begin + n_rows <= t.rows(), "rows [",
                   row_begin, ", ", row_begin + n_rows, ") of tensor ", t.name, " with ", t.rows(),
                   " rows");
  const int64_t row = t.row_size();
  const size_t row_bytes = static_cast<size_t>(row / tr->block_size) * tr->type_size;
  const uint8_t* src = data(t) + static_cast<size_t>(row_begin) * row_bytes;
  ggml_dequantize_row(static_cast<GgmlType>(t.type), src, out, row * n_rows);
}

}  // namespace resp
