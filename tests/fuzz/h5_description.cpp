#include "h5_description.h"

#include <hdf5.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "ckpt/h5.h"
#include "core/error.h"

namespace resp::fuzz {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// An HDF5 id closed at scope exit.
class Id {
 public:
  Id(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  ~Id() {
    if (id_ >= 0) close_(id_);
  }
  Id(const Id&) = delete;
  Id& operator=(const Id&) = delete;
  hid_t get() const { return id_; }
  bool ok() const { return id_ >= 0; }

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

void quiet() {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}

// JSON numbers as the stored types, without the undefined behaviour of casting an out-of-range
// double to an integer.
int64_t as_i64(const json& v) {
  if (v.is_number_unsigned()) return static_cast<int64_t>(v.get<uint64_t>());
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_boolean()) return v.get<bool>() ? 1 : 0;
  if (!v.is_number_float()) return 0;
  const double d = v.get<double>();
  if (!(d > -9.2e18 && d < 9.2e18)) return d > 0 ? std::numeric_limits<int64_t>::max() : 0;
  return static_cast<int64_t>(d);
}

double as_f64(const json& v) {
  if (v.is_number()) return v.get<double>();
  if (v.is_boolean()) return v.get<bool>() ? 1 : 0;
  return 0;
}

hid_t utf8_string_type() {
  const hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  return t;
}

bool write_attr(hid_t obj, const std::string& key, const json& v) {
  if (v.is_string()) {
    Id type(utf8_string_type(), H5Tclose);
    Id space(H5Screate(H5S_SCALAR), H5Sclose);
    Id a(H5Acreate2(obj, key.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
    const std::string s = v.get<std::string>();
    const char* p = s.c_str();
    return a.ok() && H5Awrite(a.get(), type.get(), &p) >= 0;
  }
  std::vector<json> items;
  bool array = v.is_array();
  if (array) {
    if (v.empty() || v.size() > 4096) return true;  // nothing resp reads
    items.assign(v.begin(), v.end());
  } else if (v.is_number() || v.is_boolean()) {
    items.push_back(v);
  } else {
    return true;  // null, objects: not an attribute value
  }
  bool all_int = true;
  for (const json& x : items) all_int = all_int && !x.is_number_float();
  const hsize_t n = items.size();
  Id space(array ? H5Screate_simple(1, &n, nullptr) : H5Screate(H5S_SCALAR), H5Sclose);
  const hid_t type = all_int ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE;
  Id a(H5Acreate2(obj, key.c_str(), type, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!a.ok()) return false;
  if (all_int) {
    std::vector<int64_t> b;
    for (const json& x : items) b.push_back(as_i64(x));
    return H5Awrite(a.get(), type, b.data()) >= 0;
  }
  std::vector<double> b;
  for (const json& x : items) b.push_back(as_f64(x));
  return H5Awrite(a.get(), type, b.data()) >= 0;
}

bool write_attrs(hid_t obj, const json& attrs) {
  if (!attrs.is_object()) return attrs.is_null();
  for (const auto& [k, v] : attrs.items())
    if (k.empty() || !write_attr(obj, k, v)) return false;
  return true;
}

// The group or dataset at `path`, created as a group (with its parents) when missing.
hid_t open_or_create(hid_t f, const std::string& path) {
  if (path.empty() || path[0] != '/') return -1;
  if (path == "/") return H5Oopen(f, "/", H5P_DEFAULT);
  if (H5Oexists_by_name(f, path.c_str(), H5P_DEFAULT) > 0)
    return H5Oopen(f, path.c_str(), H5P_DEFAULT);
  Id lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
  H5Pset_create_intermediate_group(lcpl.get(), 1);
  return H5Gcreate2(f, path.c_str(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT);
}

bool write_dataset(hid_t f, const std::string& name, const json& spec, size_t max_elements) {
  if (!spec.is_object() || name.empty() || name[0] != '/') return false;
  const json type_field = spec.value("type", json("f64"));
  if (!type_field.is_string()) return false;
  const std::string type = type_field.get<std::string>();
  if (type == "str") {
    Id t(utf8_string_type(), H5Tclose);
    Id space(H5Screate(H5S_SCALAR), H5Sclose);
    Id lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
    H5Pset_create_intermediate_group(lcpl.get(), 1);
    Id ds(H5Dcreate2(f, name.c_str(), t.get(), space.get(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT),
          H5Dclose);
    const json d = spec.value("data", json(""));
    const std::string s = d.is_string() ? d.get<std::string>() : d.dump();
    const char* p = s.c_str();
    return ds.ok() && H5Dwrite(ds.get(), t.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, &p) >= 0 &&
           write_attrs(ds.get(), spec.value("attrs", json()));
  }
  hid_t mem;
  if (type == "i32")
    mem = H5T_NATIVE_INT32;
  else if (type == "i64")
    mem = H5T_NATIVE_INT64;
  else if (type == "f32")
    mem = H5T_NATIVE_FLOAT;
  else if (type == "f64")
    mem = H5T_NATIVE_DOUBLE;
  else
    return false;
  const json shape = spec.value("shape", json::array());
  if (!shape.is_array() || shape.size() > 8) return false;
  std::vector<hsize_t> dims;
  long double n = 1;
  for (const json& d : shape) {
    if (!d.is_number_unsigned()) return false;
    dims.push_back(d.get<uint64_t>());
    n *= static_cast<long double>(dims.back());
  }
  if (n > 1e18L) return false;  // HDF5 refuses dataspaces this large anyway
  const auto count = static_cast<size_t>(n);
  Id space(dims.empty() ? H5Screate(H5S_SCALAR)
                        : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
           H5Sclose);
  if (!space.ok()) return false;
  // Chunked with Fletcher32, as resp writes them; at most 64 Ki elements per chunk.
  Id dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  if (count > 0 && !dims.empty()) {
    std::vector<hsize_t> chunk(dims.size());
    hsize_t budget = 65536;
    for (size_t i = dims.size(); i-- > 0;) {
      chunk[i] = std::max<hsize_t>(1, std::min(dims[i], budget));
      budget = std::max<hsize_t>(1, budget / chunk[i]);
    }
    if (H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data()) < 0 ||
        H5Pset_fletcher32(dcpl.get()) < 0)
      return false;
  }
  Id lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
  H5Pset_create_intermediate_group(lcpl.get(), 1);
  Id ds(H5Dcreate2(f, name.c_str(), mem, space.get(), lcpl.get(), dcpl.get(), H5P_DEFAULT),
        H5Dclose);
  if (!ds.ok()) return false;
  if (count > 0 && count <= max_elements) {
    const json data = spec.value("data", json::array());
    const size_t m = data.is_array() ? data.size() : 0;
    herr_t rc;
    if (mem == H5T_NATIVE_INT32 || mem == H5T_NATIVE_INT64) {
      std::vector<int64_t> b(count, 0);
      for (size_t i = 0; m > 0 && i < count; ++i) b[i] = as_i64(data[i % m]);
      rc = H5Dwrite(ds.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, b.data());
    } else {
      std::vector<double> b(count, 0);
      for (size_t i = 0; m > 0 && i < count; ++i) b[i] = as_f64(data[i % m]);
      rc = H5Dwrite(ds.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, b.data());
    }
    if (rc < 0) return false;
  }
  return write_attrs(ds.get(), spec.value("attrs", json()));
}

bool set_digest(const fs::path& path, const std::string& value) {
  Id f(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose);
  if (!f.ok()) return false;
  if (H5Aexists(f.get(), h5::kDigestAttribute) > 0) H5Adelete(f.get(), h5::kDigestAttribute);
  Id root(H5Oopen(f.get(), "/", H5P_DEFAULT), H5Oclose);
  return write_attr(root.get(), h5::kDigestAttribute, value);
}

// ---- describe -------------------------------------------------------------------------------

json read_attr(hid_t a) {
  Id type(H5Aget_type(a), H5Tclose);
  Id space(H5Aget_space(a), H5Sclose);
  const H5T_class_t cls = H5Tget_class(type.get());
  if (cls == H5T_STRING) {
    if (H5Tis_variable_str(type.get()) > 0) {
      char* s = nullptr;
      Id mem(utf8_string_type(), H5Tclose);
      if (H5Aread(a, mem.get(), &s) < 0 || !s) return nullptr;
      std::string out(s);
      H5free_memory(s);
      return out;
    }
    std::string buf(H5Tget_size(type.get()), '\0');
    if (H5Aread(a, type.get(), buf.data()) < 0) return nullptr;
    return buf.substr(0, buf.find('\0'));
  }
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  const bool scalar = H5Sget_simple_extent_ndims(space.get()) == 0;
  if (n < 1 || n > 4096) return nullptr;
  json out = json::array();
  if (cls == H5T_INTEGER) {
    std::vector<int64_t> b(static_cast<size_t>(n));
    if (H5Aread(a, H5T_NATIVE_INT64, b.data()) < 0) return nullptr;
    for (int64_t x : b) out.push_back(x);
  } else if (cls == H5T_FLOAT) {
    std::vector<double> b(static_cast<size_t>(n));
    if (H5Aread(a, H5T_NATIVE_DOUBLE, b.data()) < 0) return nullptr;
    for (double x : b) out.push_back(x);
  } else {
    return nullptr;
  }
  return scalar ? out[0] : out;
}

herr_t collect_attr(hid_t loc, const char* name, const H5A_info_t*, void* data) {
  auto* attrs = static_cast<json*>(data);
  if (std::string(name) == h5::kDigestAttribute) return 0;
  Id a(H5Aopen(loc, name, H5P_DEFAULT), H5Aclose);
  if (a.ok()) (*attrs)[name] = read_attr(a.get());
  return 0;
}

json attrs_of(hid_t obj) {
  json attrs = json::object();
  hsize_t idx = 0;
  H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, &idx, collect_attr, &attrs);
  return attrs;
}

json describe_dataset(hid_t ds) {
  Id type(H5Dget_type(ds), H5Tclose);
  Id space(H5Dget_space(ds), H5Sclose);
  json spec;
  const H5T_class_t cls = H5Tget_class(type.get());
  const size_t size = H5Tget_size(type.get());
  std::vector<hsize_t> dims(
      static_cast<size_t>(std::max(0, H5Sget_simple_extent_ndims(space.get()))));
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  const auto n = static_cast<size_t>(H5Sget_simple_extent_npoints(space.get()));
  spec["shape"] = dims;
  json data = json::array();
  if (cls == H5T_INTEGER) {
    spec["type"] = size == 4 ? "i32" : "i64";
    std::vector<int64_t> b(n);
    if (n) H5Dread(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, b.data());
    for (int64_t x : b) data.push_back(x);
  } else {
    spec["type"] = size == 4 ? "f32" : "f64";
    std::vector<double> b(n);
    if (n) H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, b.data());
    for (double x : b) data.push_back(x);
  }
  spec["data"] = data;
  if (json a = attrs_of(ds); !a.empty()) spec["attrs"] = a;
  return spec;
}

struct Walk {
  json attrs = json::object();
  json datasets = json::object();
};

herr_t visit_link(hid_t root, const char* name, const H5L_info_t*, void* data) {
  auto* w = static_cast<Walk*>(data);
  const std::string path = std::string("/") + name;
  Id obj(H5Oopen(root, name, H5P_DEFAULT), H5Oclose);
  if (!obj.ok()) return 0;
  if (H5Iget_type(obj.get()) == H5I_DATASET) {
    w->datasets[path] = describe_dataset(obj.get());
  } else if (json a = attrs_of(obj.get()); !a.empty()) {
    w->attrs[path] = a;
  }
  return 0;
}

}  // namespace

bool build_h5(const json& d, const fs::path& path, size_t max_elements) {
  quiet();
  if (!d.is_object()) return false;
  const json datasets = d.value("datasets", json::object());
  const json attrs = d.value("attrs", json::object());
  const json digest = d.value("digest", json("none"));
  if (!datasets.is_object() || !attrs.is_object() || !digest.is_string()) return false;
  {
    Id f(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
    if (!f.ok()) return false;
    for (const auto& [name, spec] : datasets.items())
      if (!write_dataset(f.get(), name, spec, max_elements)) return false;
    for (const auto& [obj, values] : attrs.items()) {
      Id o(open_or_create(f.get(), obj), H5Oclose);
      if (!o.ok() || !write_attrs(o.get(), values)) return false;
    }
  }
  if (digest == "stale") return set_digest(path, "fnv1a64:0123456789abcdef");
  if (digest == "valid") {
    std::string value;
    try {
      // No digest attribute yet: open() does not verify, content_digest() computes it.
      h5::File f = h5::File::open(path);
      value = f.content_digest();
    } catch (const Error&) {
      return true;  // resp cannot digest what it wrote from this description: leave it out
    }
    return set_digest(path, value);
  }
  return true;
}

json describe_h5(const fs::path& path) {
  quiet();
  Id f(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!f.ok()) throw std::runtime_error("cannot open " + path.string());
  Walk w;
  Id root(H5Oopen(f.get(), "/", H5P_DEFAULT), H5Oclose);
  if (json a = attrs_of(root.get()); !a.empty()) w.attrs["/"] = a;
  H5Lvisit(f.get(), H5_INDEX_NAME, H5_ITER_INC, visit_link, &w);
  return {{"digest", "valid"}, {"attrs", w.attrs}, {"datasets", w.datasets}};
}

}  // namespace resp::fuzz
