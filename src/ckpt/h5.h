// Thin RAII layer over the HDF5 C API. HDF5 1.10 has no bf16 type: tensors are stored as f32
// or f64. Every failure throws with the file and object named.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace resp::h5 {

using hid = int64_t;

class Handle {
 public:
  Handle() = default;
  Handle(hid id, int (*close)(hid)) : id_(id), close_(close) {}
  Handle(Handle&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = -1; }
  Handle& operator=(Handle&& o) noexcept;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle();
  hid id() const { return id_; }
  bool valid() const { return id_ >= 0; }

 private:
  hid id_ = -1;
  int (*close_)(hid) = nullptr;
};

class File {
 public:
  // Creates (truncates) a file for writing.
  static File create(const std::filesystem::path& path);
  // Opens an existing file read-only; throws IoError / FormatError with the path.
  static File open(const std::filesystem::path& path);
  const std::string& path() const { return path_; }
  hid id() const { return file_.id(); }
  void close();

  // Groups are created with intermediate groups ("/a/b/c").
  void create_group(const std::string& name);
  bool exists(const std::string& name) const;

  void write(const std::string& name, const std::vector<double>& v);
  void write(const std::string& name, const std::vector<float>& v,
             const std::vector<int64_t>& shape);
  void write(const std::string& name, const std::vector<int32_t>& v,
             const std::vector<int64_t>& shape = {});
  void write(const std::string& name, const std::vector<int64_t>& v);
  std::vector<double> read_f64(const std::string& name) const;
  std::vector<float> read_f32(const std::string& name, std::vector<int64_t>* shape = nullptr) const;
  std::vector<int32_t> read_i32(const std::string& name,
                                std::vector<int64_t>* shape = nullptr) const;
  std::vector<int64_t> read_i64(const std::string& name) const;
  std::vector<int64_t> shape(const std::string& name) const;

  // Attributes on an object (group or dataset; "/" = root).
  void set_attr(const std::string& obj, const std::string& key, const std::string& value);
  void set_attr(const std::string& obj, const std::string& key, int64_t value);
  void set_attr(const std::string& obj, const std::string& key, double value);
  std::string attr_string(const std::string& obj, const std::string& key) const;
  int64_t attr_int(const std::string& obj, const std::string& key) const;
  double attr_double(const std::string& obj, const std::string& key) const;
  bool has_attr(const std::string& obj, const std::string& key) const;

 private:
  std::string path_;
  Handle file_;
};

}  // namespace resp::h5
