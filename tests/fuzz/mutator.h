// Seeded mutation of fuzz inputs, deterministic for a given seed: the same seed and corpus give
// the same sequence of mutants on every machine (own RNG, no std distributions), so a finding
// is reproduced by its mutant number as well as by the saved bytes.
//
// A mutant is one input from the pool (the seed corpus plus inputs the reader accepted) with 1
// to 6 stacked edits: bit flips; bytes and 2/4/8-byte little-endian fields set to boundary
// values (0, 0xff, 0x7f, 0x80, INT32_MAX, 2^31, 2^63...) or nudged by a small delta; chunks
// truncated, appended, duplicated, deleted or copied over; a splice of two inputs; decimal
// integers in text replaced by neighbours and boundary values; dictionary tokens inserted.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace resp::fuzz {

// SplitMix64: small, fast and the same everywhere.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t next();
  // Uniform in [0, n); n > 0.
  uint64_t below(uint64_t n) { return next() % n; }
  bool chance(uint64_t one_in) { return below(one_in) == 0; }

 private:
  uint64_t s_;
};

class Mutator {
 public:
  Mutator(uint64_t seed, std::vector<std::string> dictionary, size_t max_size);

  // A new mutant of an input drawn from `pool` (non-empty).
  std::string mutate(const std::vector<std::string>& pool);
  // One edit applied in place (`other` is the splice partner).
  void edit(std::string& s, const std::string& other);

 private:
  void flip_bit(std::string& s);
  void set_interesting(std::string& s);
  void nudge(std::string& s);
  void truncate(std::string& s);
  void extend(std::string& s);
  void duplicate_chunk(std::string& s);
  void delete_chunk(std::string& s);
  void copy_chunk(std::string& s, const std::string& from);
  void splice(std::string& s, const std::string& other);
  void edit_integer(std::string& s);
  void insert_token(std::string& s);

  Rng rng_;
  std::vector<std::string> dictionary_;
  size_t max_size_;
};

}  // namespace resp::fuzz
