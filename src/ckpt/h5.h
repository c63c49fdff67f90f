// Thin RAII layer over the HDF5 C API. HDF5 1.10 has no bf16 type: tensors are stored as f32
// or f64. Every failure throws with the file and object named.
//
// Integrity: files we write are built in memory (HDF5's core driver) and written out by our own
// code at close(), so a full disk or an I/O error is one IoError with nothing half-written and
// no HDF5 state left open (HDF5 closing a failed file at MPI_Finalize crashed). Every dataset
// carries HDF5's Fletcher32 checksum (h5py verifies it too), and the root attribute
// `resp_digest` is a 64-bit FNV-1a digest of every dataset and attribute, which open()
// verifies: a flipped bit in a trace token or an edited `iteration` attribute is a FormatError,
// not a silently different run. Before either, open() checks the seal (below): a hash of the
// file's bytes, so rot never reaches libhdf5's parser, which can hang on corrupt structure.
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
  // A new file for writing, held in memory until close() writes it to `path` (truncating).
  static File create(const std::filesystem::path& path);
  // Opens an existing file read-only and verifies its digest when it has one (files written
  // before digests existed have none); throws IoError / FormatError with the path.
  static File open(const std::filesystem::path& path);
  const std::string& path() const { return path_; }
  hid id() const { return file_.id(); }
  // Writing: seals the digest and writes the file (fsync'd); IoError naming the path and the
  // system error (e.g. "No space left on device"), with any partial file removed. Reading:
  // releases the file.
  void close();
  // The digest of the current contents (what resp_digest holds for an intact file).
  std::string content_digest() const;

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
  bool writable_ = false;
};

// The root attribute that holds the digest.
inline constexpr const char* kDigestAttribute = "resp_digest";

// The seal (a 512-byte user block: "RESP-SEAL 1", the file size and a hash of every byte after
// the block), checked before libhdf5 reads a byte of structure. Files from before seals start
// with the HDF5 signature and are Unsealed; anything else that does not match is a FormatError.
enum class SealState { Sealed, Unsealed };
SealState check_seal(const std::vector<unsigned char>& bytes, const std::string& path);
// Seals a file image whose HDF5 superblock starts at byte 512 (what create() makes). Tests that
// edit a file through libhdf5 reseal it to reach the checks behind the seal.
void seal_image(std::vector<unsigned char>& image);

}  // namespace resp::h5
