#include "ckpt/h5.h"

#include <fcntl.h>
#include <hdf5.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "core/error.h"

namespace resp::h5 {

namespace {

// HDF5 prints its own error stack by default; we report one line through our exceptions.
struct QuietErrors {
  QuietErrors() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }
};
const QuietErrors& quiet() {
  static const QuietErrors q;
  return q;
}

int close_file(hid id) {
  return H5Fclose(id);
}
int close_dataset(hid id) {
  return H5Dclose(id);
}
int close_space(hid id) {
  return H5Sclose(id);
}
int close_group(hid id) {
  return H5Gclose(id);
}
int close_attr(hid id) {
  return H5Aclose(id);
}
int close_type(hid id) {
  return H5Tclose(id);
}
int close_plist(hid id) {
  return H5Pclose(id);
}

Handle check(hid id, int (*close)(hid), const std::string& what) {
  if (id < 0) throw FormatError(what);
  return Handle(id, close);
}

Handle space_of(const std::vector<int64_t>& shape) {
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  if (dims.empty()) return check(H5Screate(H5S_SCALAR), close_space, "H5Screate");
  return check(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), close_space,
               "H5Screate_simple");
}

template <typename T>
void write_dataset(const File& f, const std::string& name, hid type, const T* data,
                   const std::vector<int64_t>& shape) {
  Handle space = space_of(shape);
  Handle lcpl = check(H5Pcreate(H5P_LINK_CREATE), close_plist, "H5Pcreate");
  H5Pset_create_intermediate_group(lcpl.id(), 1);
  int64_t n = 1;
  for (auto d : shape) n *= d;
  // Fletcher32 needs a chunked layout; one chunk per dataset up to ~64 MiB keeps reads simple.
  Handle dcpl = check(H5Pcreate(H5P_DATASET_CREATE), close_plist, "H5Pcreate");
  if (n > 0 && !shape.empty()) {
    std::vector<hsize_t> chunk(shape.begin(), shape.end());
    const hsize_t row = n / static_cast<int64_t>(chunk[0]);
    chunk[0] = std::max<hsize_t>(1, std::min<hsize_t>(chunk[0], (hsize_t{16} << 20) / row));
    if (H5Pset_chunk(dcpl.id(), static_cast<int>(chunk.size()), chunk.data()) < 0 ||
        H5Pset_fletcher32(dcpl.id()) < 0)
      throw IoError(cat(f.path(), ": cannot set up the checksum of dataset ", name));
  }
  Handle ds =
      check(H5Dcreate2(f.id(), name.c_str(), type, space.id(), lcpl.id(), dcpl.id(), H5P_DEFAULT),
            close_dataset, cat(f.path(), ": cannot create dataset ", name));
  if (n > 0 && H5Dwrite(ds.id(), type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
    throw IoError(cat(f.path(), ": cannot write dataset ", name));
}

// The element count of a dataspace of `obj`, refused when the elements need more bytes than the
// whole file: resp writes no compressed data, so such dims are a corrupt header, and a flipped
// bit in a dimension must be a FormatError, not an allocation of terabytes.
uint64_t element_count(hid obj, const std::vector<hsize_t>& dims, size_t elem_size,
                       const std::string& what) {
  hsize_t file_size = 0;
  const hid file = H5Iget_file_id(obj);
  const bool sized = file >= 0 && H5Fget_filesize(file, &file_size) >= 0;
  if (file >= 0) H5Fclose(file);
  if (!sized) throw FormatError(cat(what, ": cannot determine the file size"));
  if (std::find(dims.begin(), dims.end(), hsize_t{0}) != dims.end()) return 0;
  const uint64_t max = file_size / std::max<size_t>(elem_size, 1);
  uint64_t n = 1;
  for (hsize_t d : dims) {
    if (n > max / d)
      throw FormatError(cat(what, ": its dims ask for more data than the file's ", file_size,
                            " bytes hold (corrupt file?)"));
    n *= d;
  }
  return n;
}

template <typename T>
std::vector<T> read_dataset(const File& f, const std::string& name, hid type,
                            std::vector<int64_t>* shape_out) {
  if (!f.exists(name)) throw FormatError(cat(f.path(), ": missing dataset ", name));
  Handle ds = check(H5Dopen2(f.id(), name.c_str(), H5P_DEFAULT), close_dataset,
                    cat(f.path(), ": cannot open dataset ", name));
  Handle space = check(H5Dget_space(ds.id()), close_space, "H5Dget_space");
  const int rank = H5Sget_simple_extent_ndims(space.id());
  if (rank < 0 || rank > 8) throw FormatError(cat(f.path(), ": dataset ", name, " has bad rank"));
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  H5Sget_simple_extent_dims(space.id(), dims.data(), nullptr);
  Handle stored = check(H5Dget_type(ds.id()), close_type, "H5Dget_type");
  const uint64_t n =
      element_count(ds.id(), dims, H5Tget_size(stored.id()), cat(f.path(), ": dataset ", name));
  if (shape_out) shape_out->assign(dims.begin(), dims.end());
  std::vector<T> v(n);
  if (n > 0 && H5Dread(ds.id(), type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()) < 0)
    throw FormatError(cat(f.path(), ": cannot read dataset ", name,
                          " as the expected type (or its checksum failed: corrupt file)"));
  return v;
}

Handle open_obj(const File& f, const std::string& obj) {
  return check(
      H5Oopen(f.id(), obj.c_str(), H5P_DEFAULT), [](hid id) { return H5Oclose(id); },
      cat(f.path(), ": no object ", obj));
}

// FNV-1a, 64 bit: enough to tell rot or an edit from an intact file (not a defence against
// someone who recomputes it).
struct Fnv64 {
  static constexpr uint64_t kPrime = 1099511628211ull;
  uint64_t h = 1469598103934665603ull;
  void bytes(const void* p, size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * kPrime;
  }
  // The same over 64-bit words, then the tail bytes: 8x faster on multi-GB files, and a change
  // confined to one word always changes the result (each step is a bijection of the state).
  void words(const unsigned char* p, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      h = (h ^ w) * kPrime;
    }
    bytes(p + i, n - i);
  }
  void u64(uint64_t v) { bytes(&v, sizeof v); }
  void str(std::string_view s) {
    u64(s.size());
    bytes(s.data(), s.size());
  }
};

std::string read_string_value(hid obj, hid type, bool is_attr, const std::string& what) {
  if (H5Tis_variable_str(type) > 0) {
    char* s = nullptr;
    Handle mem = check(H5Tcopy(H5T_C_S1), close_type, "H5Tcopy");
    H5Tset_size(mem.id(), H5T_VARIABLE);
    H5Tset_cset(mem.id(), H5Tget_cset(type));  // HDF5 will not convert ASCII <-> UTF-8
    const herr_t rc = is_attr ? H5Aread(obj, mem.id(), &s)
                              : H5Dread(obj, mem.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, &s);
    if (rc < 0 || !s) throw FormatError(cat(what, ": cannot read string"));
    std::string out(s);
    H5free_memory(s);
    return out;
  }
  const size_t n = H5Tget_size(type);
  if (n > (1u << 26)) throw FormatError(cat(what, ": string too large"));
  std::string buf(n, '\0');
  const herr_t rc = is_attr ? H5Aread(obj, type, buf.data())
                            : H5Dread(obj, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data());
  if (rc < 0) throw FormatError(cat(what, ": cannot read string"));
  while (!buf.empty() && buf.back() == '\0') buf.pop_back();
  return buf;
}

// Folds one value (attribute or dataset) into the digest: its type class, element size,
// shape and bytes as this machine's native type.
void digest_value(Fnv64& d, hid obj, bool is_attr, const std::string& what) {
  Handle type = check(is_attr ? H5Aget_type(obj) : H5Dget_type(obj), close_type,
                      cat(what, ": cannot read type"));
  Handle space = check(is_attr ? H5Aget_space(obj) : H5Dget_space(obj), close_space,
                       cat(what, ": cannot read shape"));
  const H5T_class_t cls = H5Tget_class(type.id());
  d.u64(static_cast<uint64_t>(cls));
  const int rank = H5Sget_simple_extent_ndims(space.id());
  if (rank < 0 || rank > 8) throw FormatError(cat(what, ": bad rank"));
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  H5Sget_simple_extent_dims(space.id(), dims.data(), nullptr);
  for (hsize_t x : dims) d.u64(x);
  if (cls == H5T_STRING) {
    if (rank != 0) throw FormatError(cat(what, ": string arrays are not written by resp"));
    d.str(read_string_value(obj, type.id(), is_attr, what));
    return;
  }
  if (cls != H5T_INTEGER && cls != H5T_FLOAT)
    throw FormatError(cat(what, ": unexpected HDF5 type class ", static_cast<int>(cls)));
  Handle native = check(H5Tget_native_type(type.id(), H5T_DIR_ASCEND), close_type,
                        cat(what, ": no native type"));
  const size_t size = H5Tget_size(native.id());
  d.u64(size);
  const uint64_t n = element_count(obj, dims, size, what);
  if (n == 0) return;
  std::vector<unsigned char> buf(n * size);
  const herr_t rc = is_attr ? H5Aread(obj, native.id(), buf.data())
                            : H5Dread(obj, native.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data());
  if (rc < 0) throw FormatError(cat(what, ": cannot read (checksum failed: corrupt file?)"));
  d.bytes(buf.data(), buf.size());
}

struct DigestWalk {
  Fnv64 d;
  std::string file;
  std::string error;     // set by callbacks: HDF5's iteration cannot carry our exceptions
  bool at_root = false;  // the root's digest attribute does not cover itself
};

herr_t digest_attribute(hid loc, const char* name, const H5A_info_t*, void* data) {
  auto* w = static_cast<DigestWalk*>(data);
  try {
    if (w->at_root && std::strcmp(name, kDigestAttribute) == 0) return 0;
    w->d.str(name);
    Handle a = check(H5Aopen(loc, name, H5P_DEFAULT), close_attr,
                     cat(w->file, ": cannot open attribute ", name));
    digest_value(w->d, a.id(), true, cat(w->file, ": attribute ", name));
    return 0;
  } catch (const std::exception& e) {
    w->error = e.what();
    return -1;
  }
}

void digest_attributes(DigestWalk& w, hid obj, bool root = false) {
  w.at_root = root;
  hsize_t idx = 0;
  if (H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, &idx, digest_attribute, &w) < 0)
    throw FormatError(w.error.empty() ? cat(w.file, ": cannot list attributes") : w.error);
}

// Depth-first, links in name order: the same walk for writer and reader.
void digest_group(DigestWalk& w, hid group, const std::string& where) {
  digest_attributes(w, group, where == "/");
  H5G_info_t info;
  if (H5Gget_info(group, &info) < 0) throw FormatError(cat(w.file, ": cannot list ", where));
  if (info.nlinks > (1u << 24)) throw FormatError(cat(w.file, ": ", where, " has too many links"));
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t len =
        H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    if (len < 0 || len > 4096) throw FormatError(cat(w.file, ": bad link name in ", where));
    std::string name(static_cast<size_t>(len) + 1, '\0');
    H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size(),
                       H5P_DEFAULT);
    name.resize(static_cast<size_t>(len));
    const std::string path = where == "/" ? "/" + name : where + "/" + name;
    w.d.str(path);
    Handle obj = check(
        H5Oopen(group, name.c_str(), H5P_DEFAULT), [](hid id) { return H5Oclose(id); },
        cat(w.file, ": cannot open ", path));
    switch (H5Iget_type(obj.id())) {
      case H5I_GROUP:
        digest_group(w, obj.id(), path);
        break;
      case H5I_DATASET:
        digest_attributes(w, obj.id());
        digest_value(w.d, obj.id(), false, cat(w.file, ": dataset ", path));
        break;
      default:
        throw FormatError(cat(w.file, ": unexpected object ", path));
    }
  }
}

// The seal: resp's files carry a 512-byte HDF5 user block (HDF5 and h5py skip it) that holds
// the size and a hash of every byte after it. open() checks it before libhdf5 parses anything,
// because libhdf5 is not hardened against corrupt structure: on rotten bytes it can hang or
// crash (docs/fuzzing.md) before resp's content digest gets a chance to say "corrupt".
constexpr size_t kSealSize = 512;
constexpr char kSealMagic[] = "RESP-SEAL 1\n";
constexpr unsigned char kHdf5Signature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};

uint64_t seal_hash(const unsigned char* p, size_t n) {
  Fnv64 d;
  d.words(p, n);
  return d.h;
}

std::string seal_text(size_t size, uint64_t hash) {
  char buf[128];
  std::snprintf(buf, sizeof buf, "%sbytes %zu\nfnv1a64w %016llx\n", kSealMagic, size,
                static_cast<unsigned long long>(hash));
  return buf;
}

// Writes `bytes` to `path` and fsyncs it; on failure removes what was written.
void write_file_bytes(const std::string& path, const std::vector<unsigned char>& bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw IoError(cat("cannot create ", path, ": ", std::strerror(errno)));
  size_t done = 0;
  int err = 0;
  while (done < bytes.size()) {
    const ssize_t w = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      err = errno;
      break;
    }
    done += static_cast<size_t>(w);
  }
  if (!err && ::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && !err) err = errno;
  if (err) {
    ::unlink(path.c_str());
    throw IoError(cat("cannot write ", path, ": ", std::strerror(err)));
  }
}

std::vector<unsigned char> read_file_bytes(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw IoError(cat("cannot open ", path, ": ", std::strerror(errno)));
  std::vector<unsigned char> out;
  unsigned char buf[1 << 16];
  int err = 0;
  for (;;) {
    const ssize_t r = ::read(fd, buf, sizeof buf);
    if (r < 0) {
      if (errno == EINTR) continue;
      err = errno;
      break;
    }
    if (r == 0) break;
    out.insert(out.end(), buf, buf + r);
  }
  ::close(fd);
  if (err) throw IoError(cat("cannot read ", path, ": ", std::strerror(err)));
  return out;
}

}  // namespace

void seal_image(std::vector<unsigned char>& image) {
  if (image.size() < kSealSize + sizeof kHdf5Signature ||
      std::memcmp(image.data() + kSealSize, kHdf5Signature, sizeof kHdf5Signature) != 0)
    throw Error("seal_image: not an HDF5 image with a 512-byte user block");
  const std::string text =
      seal_text(image.size(), seal_hash(image.data() + kSealSize, image.size() - kSealSize));
  std::fill(image.begin(), image.begin() + kSealSize, 0);
  std::memcpy(image.data(), text.data(), text.size());
}

SealState check_seal(const std::vector<unsigned char>& bytes, const std::string& path) {
  if (bytes.size() >= sizeof kHdf5Signature &&
      std::memcmp(bytes.data(), kHdf5Signature, sizeof kHdf5Signature) == 0)
    return SealState::Unsealed;  // written before seals existed: the digest is all there is
  const size_t magic = sizeof kSealMagic - 1;
  if (bytes.size() < kSealSize + sizeof kHdf5Signature ||
      std::memcmp(bytes.data(), kSealMagic, magic) != 0)
    throw FormatError(cat(path, " is not a resp HDF5 file or its seal is damaged (", bytes.size(),
                          " bytes; truncated or corrupt?)"));
  const std::string expected =
      seal_text(bytes.size(), seal_hash(bytes.data() + kSealSize, bytes.size() - kSealSize));
  const std::string stored(reinterpret_cast<const char*>(bytes.data()),
                           strnlen(reinterpret_cast<const char*>(bytes.data()), kSealSize));
  // The padding is part of the seal: a flip there is rot too.
  const bool padding_clean =
      std::all_of(bytes.begin() + static_cast<std::ptrdiff_t>(stored.size()),
                  bytes.begin() + kSealSize, [](unsigned char c) { return c == 0; });
  if (stored != expected || !padding_clean) {
    // Name what differs in words a user can act on: a short file was cut off, otherwise rot.
    const auto line = [](const std::string& t, size_t k) {
      size_t b = 0;
      for (size_t i = 0; i < k && b != std::string::npos; ++i) b = t.find('\n', b) + 1;
      return t.substr(b, t.find('\n', b) - b);
    };
    throw FormatError(cat(path, ": checksum mismatch over the file bytes (seal says \"",
                          line(stored, 1), ", ", line(stored, 2), "\", file has \"",
                          line(expected, 1), ", ", line(expected, 2),
                          "\"): the file is corrupt, truncated or was edited"));
  }
  return SealState::Sealed;
}

Handle& Handle::operator=(Handle&& o) noexcept {
  if (this != &o) {
    if (id_ >= 0 && close_) close_(id_);
    id_ = o.id_;
    close_ = o.close_;
    o.id_ = -1;
  }
  return *this;
}

Handle::~Handle() {
  if (id_ >= 0 && close_) close_(id_);
}

File File::create(const std::filesystem::path& path) {
  quiet();
  File f;
  f.path_ = path.string();
  // In memory, no backing store: HDF5 never touches the disk; close() writes the image.
  Handle fapl = check(H5Pcreate(H5P_FILE_ACCESS), close_plist, "H5Pcreate");
  if (H5Pset_fapl_core(fapl.id(), size_t{1} << 20, 0) < 0)
    throw IoError(cat("cannot set up the in-memory HDF5 file for ", f.path_));
  Handle fcpl = check(H5Pcreate(H5P_FILE_CREATE), close_plist, "H5Pcreate");
  if (H5Pset_userblock(fcpl.id(), kSealSize) < 0)
    throw IoError(cat("cannot reserve the seal of ", f.path_));
  const hid id = H5Fcreate(f.path_.c_str(), H5F_ACC_TRUNC, fcpl.id(), fapl.id());
  if (id < 0) throw IoError(cat("cannot create HDF5 file ", f.path_));
  f.file_ = Handle(id, close_file);
  f.writable_ = true;
  return f;
}

File File::open(const std::filesystem::path& path) {
  quiet();
  File f;
  f.path_ = path.string();
  if (!std::filesystem::exists(path)) throw IoError(cat(f.path_, " does not exist"));
  if (std::filesystem::is_directory(path)) throw IoError(cat(f.path_, " is a directory"));
  check_seal(read_file_bytes(f.path_), f.path_);
  if (H5Fis_hdf5(f.path_.c_str()) <= 0)
    throw FormatError(cat(f.path_, " is not an HDF5 file (truncated or corrupt?)"));
  const hid id = H5Fopen(f.path_.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (id < 0) throw FormatError(cat("cannot open HDF5 file ", f.path_, " (truncated or corrupt?)"));
  f.file_ = Handle(id, close_file);
  if (f.has_attr("/", kDigestAttribute)) {
    const std::string stored = f.attr_string("/", kDigestAttribute);
    const std::string actual = f.content_digest();
    if (stored != actual)
      throw FormatError(cat(f.path_, ": checksum mismatch (stored ", stored, ", contents ", actual,
                            "): the file is corrupt or was edited"));
  }
  return f;
}

std::string File::content_digest() const {
  DigestWalk w;
  w.file = path_;
  Handle root = check(H5Gopen2(id(), "/", H5P_DEFAULT), close_group, cat(path_, ": no root group"));
  digest_group(w, root.id(), "/");
  char buf[32];
  std::snprintf(buf, sizeof buf, "fnv1a64:%016llx", static_cast<unsigned long long>(w.d.h));
  return buf;
}

void File::close() {
  if (!file_.valid()) return;
  if (!writable_) {
    file_ = Handle();
    return;
  }
  writable_ = false;
  set_attr("/", kDigestAttribute, content_digest());
  if (H5Fflush(file_.id(), H5F_SCOPE_LOCAL) < 0) throw IoError(cat("cannot flush ", path_));
  const ssize_t size = H5Fget_file_image(file_.id(), nullptr, 0);
  if (size <= 0) throw IoError(cat("cannot serialise ", path_));
  // The image HDF5 hands out leaves the user block out; the file is the block, then the image.
  std::vector<unsigned char> image(kSealSize + static_cast<size_t>(size));
  if (H5Fget_file_image(file_.id(), image.data() + kSealSize, static_cast<size_t>(size)) != size)
    throw IoError(cat("cannot serialise ", path_));
  file_ = Handle();
  seal_image(image);
  write_file_bytes(path_, image);
}

void File::create_group(const std::string& name) {
  Handle lcpl = check(H5Pcreate(H5P_LINK_CREATE), close_plist, "H5Pcreate");
  H5Pset_create_intermediate_group(lcpl.id(), 1);
  check(H5Gcreate2(id(), name.c_str(), lcpl.id(), H5P_DEFAULT, H5P_DEFAULT), close_group,
        cat(path_, ": cannot create group ", name));
}

bool File::exists(const std::string& name) const {
  if (name == "/") return true;
  // Check every prefix: H5Lexists fails on a missing intermediate group.
  size_t pos = 1;
  while (true) {
    const size_t next = name.find('/', pos);
    const std::string prefix = name.substr(0, next);
    if (H5Lexists(id(), prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (next == std::string::npos) return true;
    pos = next + 1;
  }
}

void File::write(const std::string& name, const std::vector<double>& v) {
  write_dataset(*this, name, H5T_NATIVE_DOUBLE, v.data(), {static_cast<int64_t>(v.size())});
}
void File::write(const std::string& name, const std::vector<float>& v,
                 const std::vector<int64_t>& shape) {
  write_dataset(*this, name, H5T_NATIVE_FLOAT, v.data(), shape);
}
void File::write(const std::string& name, const std::vector<int32_t>& v,
                 const std::vector<int64_t>& shape) {
  write_dataset(*this, name, H5T_NATIVE_INT32, v.data(),
                shape.empty() ? std::vector<int64_t>{static_cast<int64_t>(v.size())} : shape);
}
void File::write(const std::string& name, const std::vector<int64_t>& v) {
  write_dataset(*this, name, H5T_NATIVE_INT64, v.data(), {static_cast<int64_t>(v.size())});
}
std::vector<double> File::read_f64(const std::string& name) const {
  return read_dataset<double>(*this, name, H5T_NATIVE_DOUBLE, nullptr);
}
std::vector<float> File::read_f32(const std::string& name, std::vector<int64_t>* shape) const {
  return read_dataset<float>(*this, name, H5T_NATIVE_FLOAT, shape);
}
std::vector<int32_t> File::read_i32(const std::string& name, std::vector<int64_t>* shape) const {
  return read_dataset<int32_t>(*this, name, H5T_NATIVE_INT32, shape);
}
std::vector<int64_t> File::read_i64(const std::string& name) const {
  return read_dataset<int64_t>(*this, name, H5T_NATIVE_INT64, nullptr);
}
std::vector<int64_t> File::shape(const std::string& name) const {
  std::vector<int64_t> s;
  read_dataset<double>(*this, name, H5T_NATIVE_DOUBLE, &s);
  return s;
}

void File::set_attr(const std::string& obj, const std::string& key, const std::string& value) {
  Handle o = open_obj(*this, obj);
  // Variable-length UTF-8: h5py reads it back as str, not bytes.
  Handle type = check(H5Tcopy(H5T_C_S1), close_type, "H5Tcopy");
  H5Tset_size(type.id(), H5T_VARIABLE);
  H5Tset_cset(type.id(), H5T_CSET_UTF8);
  Handle space = space_of({});
  Handle a = check(H5Acreate2(o.id(), key.c_str(), type.id(), space.id(), H5P_DEFAULT, H5P_DEFAULT),
                   close_attr, cat(path_, ": cannot create attribute ", obj, "@", key));
  const char* ptr = value.c_str();
  if (H5Awrite(a.id(), type.id(), &ptr) < 0)
    throw IoError(cat(path_, ": cannot write attribute ", key));
}

void File::set_attr(const std::string& obj, const std::string& key, int64_t value) {
  Handle o = open_obj(*this, obj);
  Handle space = space_of({});
  Handle a =
      check(H5Acreate2(o.id(), key.c_str(), H5T_NATIVE_INT64, space.id(), H5P_DEFAULT, H5P_DEFAULT),
            close_attr, cat(path_, ": cannot create attribute ", key));
  if (H5Awrite(a.id(), H5T_NATIVE_INT64, &value) < 0)
    throw IoError(cat(path_, ": cannot write attribute ", key));
}

void File::set_attr(const std::string& obj, const std::string& key, double value) {
  Handle o = open_obj(*this, obj);
  Handle space = space_of({});
  Handle a = check(
      H5Acreate2(o.id(), key.c_str(), H5T_NATIVE_DOUBLE, space.id(), H5P_DEFAULT, H5P_DEFAULT),
      close_attr, cat(path_, ": cannot create attribute ", key));
  if (H5Awrite(a.id(), H5T_NATIVE_DOUBLE, &value) < 0)
    throw IoError(cat(path_, ": cannot write attribute ", key));
}

bool File::has_attr(const std::string& obj, const std::string& key) const {
  if (!exists(obj)) return false;
  return H5Aexists_by_name(id(), obj.c_str(), key.c_str(), H5P_DEFAULT) > 0;
}

std::string File::attr_string(const std::string& obj, const std::string& key) const {
  if (!has_attr(obj, key)) throw FormatError(cat(path_, ": missing attribute ", obj, "@", key));
  Handle a = check(H5Aopen_by_name(id(), obj.c_str(), key.c_str(), H5P_DEFAULT, H5P_DEFAULT),
                   close_attr, cat(path_, ": cannot open attribute ", key));
  Handle type = check(H5Aget_type(a.id()), close_type, "H5Aget_type");
  if (H5Tget_class(type.id()) != H5T_STRING)
    throw FormatError(cat(path_, ": attribute ", key, " is not a string"));
  return read_string_value(a.id(), type.id(), true, cat(path_, ": attribute ", obj, "@", key));
}

int64_t File::attr_int(const std::string& obj, const std::string& key) const {
  if (!has_attr(obj, key)) throw FormatError(cat(path_, ": missing attribute ", obj, "@", key));
  Handle a = check(H5Aopen_by_name(id(), obj.c_str(), key.c_str(), H5P_DEFAULT, H5P_DEFAULT),
                   close_attr, cat(path_, ": cannot open attribute ", key));
  int64_t v = 0;
  if (H5Aread(a.id(), H5T_NATIVE_INT64, &v) < 0)
    throw FormatError(cat(path_, ": attribute ", key, " is not an integer"));
  return v;
}

double File::attr_double(const std::string& obj, const std::string& key) const {
  if (!has_attr(obj, key)) throw FormatError(cat(path_, ": missing attribute ", obj, "@", key));
  Handle a = check(H5Aopen_by_name(id(), obj.c_str(), key.c_str(), H5P_DEFAULT, H5P_DEFAULT),
                   close_attr, cat(path_, ": cannot open attribute ", key));
  double v = 0;
  if (H5Aread(a.id(), H5T_NATIVE_DOUBLE, &v) < 0)
    throw FormatError(cat(path_, ": attribute ", key, " is not a number"));
  return v;
}

}  // namespace resp::h5
