#include "ckpt/h5.h"

#include <hdf5.h>

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
  Handle ds =
      check(H5Dcreate2(f.id(), name.c_str(), type, space.id(), lcpl.id(), H5P_DEFAULT, H5P_DEFAULT),
            close_dataset, cat(f.path(), ": cannot create dataset ", name));
  int64_t n = 1;
  for (auto d : shape) n *= d;
  if (n > 0 && H5Dwrite(ds.id(), type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
    throw IoError(cat(f.path(), ": cannot write dataset ", name));
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
  uint64_t n = 1;
  for (auto d : dims) {
    if (d > (1ull << 40))
      throw FormatError(cat(f.path(), ": dataset ", name, " is absurdly large"));
    n *= d;
  }
  if (n > (1ull << 40)) throw FormatError(cat(f.path(), ": dataset ", name, " is absurdly large"));
  if (shape_out) shape_out->assign(dims.begin(), dims.end());
  std::vector<T> v(n);
  if (n > 0 && H5Dread(ds.id(), type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()) < 0)
    throw FormatError(cat(f.path(), ": cannot read dataset ", name, " as the expected type"));
  return v;
}

Handle open_obj(const File& f, const std::string& obj) {
  return check(
      H5Oopen(f.id(), obj.c_str(), H5P_DEFAULT), [](hid id) { return H5Oclose(id); },
      cat(f.path(), ": no object ", obj));
}

}  // namespace

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
  const hid id = H5Fcreate(f.path_.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (id < 0) throw IoError(cat("cannot create HDF5 file ", f.path_));
  f.file_ = Handle(id, close_file);
  return f;
}

File File::open(const std::filesystem::path& path) {
  quiet();
  File f;
  f.path_ = path.string();
  if (!std::filesystem::exists(path)) throw IoError(cat(f.path_, " does not exist"));
  if (H5Fis_hdf5(f.path_.c_str()) <= 0)
    throw FormatError(cat(f.path_, " is not an HDF5 file (truncated or corrupt?)"));
  const hid id = H5Fopen(f.path_.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (id < 0) throw FormatError(cat("cannot open HDF5 file ", f.path_, " (truncated or corrupt?)"));
  f.file_ = Handle(id, close_file);
  return f;
}

void File::close() {
  if (file_.valid() && H5Fflush(file_.id(), H5F_SCOPE_LOCAL) < 0)
    throw IoError(cat("cannot flush ", path_));
  file_ = Handle();
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
  if (H5Tis_variable_str(type.id()) > 0) {
    char* s = nullptr;
    Handle mem = check(H5Tcopy(H5T_C_S1), close_type, "H5Tcopy");
    H5Tset_size(mem.id(), H5T_VARIABLE);
    H5Tset_cset(mem.id(), H5Tget_cset(type.id()));  // HDF5 will not convert ASCII <-> UTF-8
    if (H5Aread(a.id(), mem.id(), &s) < 0 || !s)
      throw FormatError(cat(path_, ": cannot read attribute ", key));
    std::string out(s);
    H5free_memory(s);
    return out;
  }
  const size_t n = H5Tget_size(type.id());
  if (n > (1u << 26)) throw FormatError(cat(path_, ": attribute ", key, " too large"));
  std::string buf(n, '\0');
  if (H5Aread(a.id(), type.id(), buf.data()) < 0)
    throw FormatError(cat(path_, ": cannot read attribute ", key));
  while (!buf.empty() && buf.back() == '\0') buf.pop_back();
  return buf;
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
