// Byte-level BPE: the byte <-> unicode alphabet of GPT-2, the merge table and the merge loop
// (Hugging Face tokenizers' `Word::merge_all`: lowest rank first, leftmost on ties), plus a
// cache from pre-token bytes to ids.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace resp {

// GPT-2's bytes_to_unicode(): the code point that stands for byte b in vocab strings.
uint32_t byte_to_unicode(uint8_t b);
// The inverse: the byte a code point stands for, or -1 when it is not in the byte alphabet.
int byte_from_unicode(uint32_t cp);
// Decodes a vocab string to bytes; false when some character is outside the byte alphabet.
bool byte_level_decode(std::string_view token, std::string& out);
// Encodes raw bytes as a vocab string ("Ġhello" for " hello").
std::string byte_level_encode(std::string_view bytes);

// Open-addressing hash map from a (left id, right id) pair to (rank, merged id).
class MergeMap {
 public:
  void reserve(size_t n);
  // A pair that is already present takes the new rank and merged id (tokenizers builds its merge
  // map by collecting into a hash map, so a repeated merge counts at its last rank). Returns
  // false in that case.
  bool insert(int32_t left, int32_t right, uint32_t rank, int32_t merged);
  // Sets rank and merged and returns true when the pair has a merge.
  bool find(int32_t left, int32_t right, uint32_t& rank, int32_t& merged) const {
    if (slots_.empty()) return false;
    const uint64_t key = pack(left, right);
    for (size_t i = slot_of(key);; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.key == key) {
        rank = s.rank;
        merged = s.merged;
        return true;
      }
      if (s.key == kEmpty) return false;
    }
  }
  size_t size() const { return size_; }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  struct Slot {
    uint64_t key = kEmpty;
    uint32_t rank = 0;
    int32_t merged = 0;
  };
  static uint64_t pack(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  size_t slot_of(uint64_t key) const {
    return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> shift_) & mask_;
  }
  void grow();

  std::vector<Slot> slots_;
  size_t mask_ = 0, size_ = 0;
  int shift_ = 64;
};

// Cache from pre-token bytes to their ids. Not thread-safe; Tokenizer guards it.
class WordCache {
 public:
  explicit WordCache(size_t max_entries = size_t{1} << 20) : max_entries_(max_entries) {}
  static uint64_t hash(std::string_view key);
  // Appends the cached ids of `key` to `out` and returns true on a hit.
  bool lookup(std::string_view key, uint64_t h, std::vector<int32_t>& out) const;
  void insert(std::string_view key, uint64_t h, const int32_t* ids, size_t count);
  size_t size() const { return size_; }
  void clear();

 private:
  struct Slot {
    uint64_t hash = 0;  // 0 = empty (stored hashes have the low bit set)
    uint32_t key_off = 0, key_len = 0, val_off = 0, val_len = 0;
  };
  void rehash(size_t capacity);

  size_t max_entries_;
  std::vector<Slot> slots_;
  size_t mask_ = 0, size_ = 0;
  std::string keys_;
  std::vector<int32_t> vals_;
};

// How a character of the byte alphabet turns into initial symbols (tokenizers' BPE::merge_word).
// In a byte-level BPE each byte of a pre-token is one character; the string looked up in the
// vocabulary is that character with `continuing_subword_prefix` before it unless it is the first
// of the pre-token, and `end_of_word_suffix` after it when it is the last. What the lookup yields
// depends on the position, hence four tables indexed by position().
struct BpeSymbols {
  // An entry: >= 0: the id; kUnknown: not in the vocabulary (dropped, or unk_id);
  // kFallback - k: the ids fallback[k] (byte_fallback's <0xXX> tokens).
  static constexpr int32_t kUnknown = -1;
  static constexpr int32_t kFallback = -2;
  static size_t position(bool first, bool last) { return (first ? 1u : 0u) | (last ? 2u : 0u); }

  std::array<std::array<int32_t, 256>, 4> table{};
  std::vector<std::vector<int32_t>> fallback;
  // The unk token's id, -1 without one. `unk_missing` (message in `unk_error`): an unk_token
  // that is not in the vocabulary, an error only when a character needs it, as in tokenizers.
  int32_t unk_id = -1;
  bool unk_missing = false;
  std::string unk_error;
  bool fuse_unk = false;
};

class BpeModel {
 public:
  BpeModel(BpeSymbols symbols, MergeMap merges);
  // Every byte is a token of its own at every position: the initial symbols are a table lookup.
  BpeModel(std::array<int32_t, 256> byte_ids, MergeMap merges);

  // Appends the BPE ids of `bytes` (one pre-token, raw bytes) to `out`. Throws FormatError when
  // a character needs an unk_token that is not in the vocabulary.
  void encode(std::string_view bytes, std::vector<int32_t>& out) const;
  // The two merge loops (exposed so tests can check they agree); encode() picks one by length.
  void encode_scan(std::string_view bytes, std::vector<int32_t>& out) const;
  void encode_heap(std::string_view bytes, std::vector<int32_t>& out) const;

  // The id of byte b as a whole pre-token, or -1 when it is not a plain vocabulary id.
  int32_t byte_id(uint8_t b) const { return symbols_.table[BpeSymbols::position(true, true)][b]; }
  const MergeMap& merges() const { return merges_; }
  // True when every byte is a token of its own at every position.
  bool simple() const { return simple_; }

 private:
  // The initial symbols of `bytes` (the unk, fallback and drop rules of merge_word).
  void initial_symbols(std::string_view bytes, std::vector<int32_t>& ids) const;
  // Merges `ids` in place; returns the new count.
  size_t merge_scan(int32_t* ids, size_t count) const;
  void merge_heap(const int32_t* ids, size_t count, std::vector<int32_t>& out) const;

  BpeSymbols symbols_;
  MergeMap merges_;
  bool simple_ = false;
};

}  // namespace resp
