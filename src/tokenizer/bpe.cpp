#include "tokenizer/bpe.h"

#include <cstring>
#include <limits>
#include <queue>

#include "core/error.h"
#include "tokenizer/unicode.h"

namespace resp {

namespace {

struct ByteTables {
  std::array<uint32_t, 256> to_unicode{};
  std::array<int16_t, 324> from_unicode{};  // the alphabet lies below U+0144
};

const ByteTables& byte_tables() {
  static const ByteTables t = [] {
    ByteTables bt;
    bt.from_unicode.fill(-1);
    uint32_t extra = 0;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      bt.to_unicode[b] = printable ? b : 256 + extra++;
    }
    for (uint32_t b = 0; b < 256; ++b) bt.from_unicode[bt.to_unicode[b]] = static_cast<int16_t>(b);
    return bt;
  }();
  return t;
}

constexpr uint32_t kNoRank = std::numeric_limits<uint32_t>::max();

inline uint64_t load_tail(const char* p, size_t n) {
  uint64_t v = 0;
  std::memcpy(&v, p, n);
  return v;
}

inline uint64_t mix(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}

}  // namespace

uint32_t byte_to_unicode(uint8_t b) {
  return byte_tables().to_unicode[b];
}

int byte_from_unicode(uint32_t cp) {
  const auto& t = byte_tables().from_unicode;
  return cp < t.size() ? t[cp] : -1;
}

bool byte_level_decode(std::string_view token, std::string& out) {
  std::string bytes;
  bytes.reserve(token.size());
  size_t i = 0;
  while (i < token.size()) {
    const auto c = static_cast<unsigned char>(token[i]);
    // Vocab strings come from JSON, so they are valid UTF-8; guard against truncation anyway.
    const size_t need = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (i + need > token.size()) return false;
    size_t len;
    const uint32_t cp = unicode::decode_utf8(token.data(), i, len);
    const int b = byte_from_unicode(cp);
    if (b < 0) return false;
    bytes.push_back(static_cast<char>(b));
    i += len;
  }
  out = std::move(bytes);
  return true;
}

std::string byte_level_encode(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char c : bytes) unicode::append_utf8(out, byte_to_unicode(static_cast<uint8_t>(c)));
  return out;
}

// ---- MergeMap ---------------------------------------------------------------------------------

void MergeMap::reserve(size_t n) {
  size_t cap = 16;
  while (cap < n * 2) cap <<= 1;
  if (cap <= slots_.size()) return;
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(cap, Slot{});
  mask_ = cap - 1;
  shift_ = 64;
  for (size_t c = cap; c > 1; c >>= 1) --shift_;
  size_ = 0;
  for (const Slot& s : old) {
    if (s.key == kEmpty) continue;
    for (size_t i = slot_of(s.key);; i = (i + 1) & mask_) {
      if (slots_[i].key == kEmpty) {
        slots_[i] = s;
        ++size_;
        break;
      }
    }
  }
}

void MergeMap::grow() {
  reserve(slots_.empty() ? 8 : slots_.size());
}

bool MergeMap::insert(int32_t left, int32_t right, uint32_t rank, int32_t merged) {
  if ((size_ + 1) * 2 > slots_.size()) grow();
  const uint64_t key = pack(left, right);
  for (size_t i = slot_of(key);; i = (i + 1) & mask_) {
    Slot& s = slots_[i];
    if (s.key == key) {
      s.rank = rank;
      s.merged = merged;
      return false;
    }
    if (s.key == kEmpty) {
      s = Slot{key, rank, merged};
      ++size_;
      return true;
    }
  }
}

// ---- WordCache --------------------------------------------------------------------------------

uint64_t WordCache::hash(std::string_view key) {
  const char* p = key.data();
  size_t n = key.size();
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0x100000001B3ull);
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    h = (h ^ v) * 0xbf58476d1ce4e5b9ull;
    h ^= h >> 29;
    p += 8;
    n -= 8;
  }
  if (n) h = (h ^ load_tail(p, n)) * 0x94d049bb133111ebull;
  return mix(h) | 1;
}

bool WordCache::lookup(std::string_view key, uint64_t h, std::vector<int32_t>& out) const {
  if (slots_.empty()) return false;
  for (size_t i = h & mask_;; i = (i + 1) & mask_) {
    const Slot& s = slots_[i];
    if (s.hash == 0) return false;
    if (s.hash == h && s.key_len == key.size() &&
        std::memcmp(keys_.data() + s.key_off, key.data(), key.size()) == 0) {
      out.insert(out.end(), vals_.data() + s.val_off, vals_.data() + s.val_off + s.val_len);
      return true;
    }
  }
}

void WordCache::rehash(size_t capacity) {
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(capacity, Slot{});
  mask_ = capacity - 1;
  for (const Slot& s : old) {
    if (s.hash == 0) continue;
    size_t i = s.hash & mask_;
    while (slots_[i].hash != 0) i = (i + 1) & mask_;
    slots_[i] = s;
  }
}

void WordCache::insert(std::string_view key, uint64_t h, const int32_t* ids, size_t count) {
  if (size_ >= max_entries_ || keys_.size() > (size_t{64} << 20)) clear();
  if ((size_ + 1) * 2 > slots_.size()) rehash(slots_.empty() ? 1024 : slots_.size() * 2);
  size_t i = h & mask_;
  while (slots_[i].hash != 0) i = (i + 1) & mask_;
  Slot& s = slots_[i];
  s.hash = h;
  s.key_off = static_cast<uint32_t>(keys_.size());
  s.key_len = static_cast<uint32_t>(key.size());
  s.val_off = static_cast<uint32_t>(vals_.size());
  s.val_len = static_cast<uint32_t>(count);
  keys_.append(key);
  vals_.insert(vals_.end(), ids, ids + count);
  ++size_;
}

void WordCache::clear() {
  slots_.clear();
  mask_ = 0;
  size_ = 0;
  keys_.clear();
  vals_.clear();
}

// ---- BpeModel ---------------------------------------------------------------------------------

BpeModel::BpeModel(BpeSymbols symbols, MergeMap merges)
    : symbols_(std::move(symbols)), merges_(std::move(merges)) {
  simple_ = true;
  for (const auto& t : symbols_.table) {
    simple_ = simple_ && t == symbols_.table[0];
    for (const int32_t id : t) simple_ = simple_ && id >= 0;
  }
}

BpeModel::BpeModel(std::array<int32_t, 256> byte_ids, MergeMap merges)
    : BpeModel(
          [&] {
            BpeSymbols s;
            s.table.fill(byte_ids);
            return s;
          }(),
          std::move(merges)) {}

void BpeModel::initial_symbols(std::string_view bytes, std::vector<int32_t>& ids) const {
  const size_t n = bytes.size();
  ids.clear();
  ids.reserve(n);
  bool pending_unk = false;
  for (size_t i = 0; i < n; ++i) {
    const int32_t e =
        symbols_.table[BpeSymbols::position(i == 0, i + 1 == n)][static_cast<uint8_t>(bytes[i])];
    if (e >= 0) {
      if (pending_unk) ids.push_back(symbols_.unk_id);
      pending_unk = false;
      ids.push_back(e);
    } else if (e <= BpeSymbols::kFallback) {
      // As in tokenizers, byte-fallback ids go in before an unk still pending.
      const auto& fb = symbols_.fallback[static_cast<size_t>(BpeSymbols::kFallback - e)];
      ids.insert(ids.end(), fb.begin(), fb.end());
    } else if (symbols_.unk_missing) {
      throw FormatError(symbols_.unk_error);
    } else if (symbols_.unk_id >= 0) {
      if (pending_unk && !symbols_.fuse_unk) ids.push_back(symbols_.unk_id);
      pending_unk = true;
    }
    // Otherwise the character is dropped, as tokenizers does without unk_token.
  }
  if (pending_unk) ids.push_back(symbols_.unk_id);
}

void BpeModel::encode(std::string_view bytes, std::vector<int32_t>& out) const {
  const size_t n = bytes.size();
  if (n == 0) return;
  if (simple_) {
    const auto& table = symbols_.table[0];
    if (n == 1) {
      out.push_back(table[static_cast<uint8_t>(bytes[0])]);
      return;
    }
    if (n <= 64) {
      int32_t ids[64];
      for (size_t i = 0; i < n; ++i) ids[i] = table[static_cast<uint8_t>(bytes[i])];
      out.insert(out.end(), ids, ids + merge_scan(ids, n));
      return;
    }
  }
  std::vector<int32_t> ids;
  initial_symbols(bytes, ids);
  if (ids.size() <= 64) {
    out.insert(out.end(), ids.data(), ids.data() + merge_scan(ids.data(), ids.size()));
  } else {
    merge_heap(ids.data(), ids.size(), out);
  }
}

void BpeModel::encode_scan(std::string_view bytes, std::vector<int32_t>& out) const {
  std::vector<int32_t> ids;
  initial_symbols(bytes, ids);
  out.insert(out.end(), ids.data(), ids.data() + merge_scan(ids.data(), ids.size()));
}

void BpeModel::encode_heap(std::string_view bytes, std::vector<int32_t>& out) const {
  std::vector<int32_t> ids;
  initial_symbols(bytes, ids);
  merge_heap(ids.data(), ids.size(), out);
}

// Merges the lowest-ranked adjacent pair (leftmost on ties) until none is left. The symbols live
// in a compact array, so this is quadratic in the piece length: used for short pieces.
size_t BpeModel::merge_scan(int32_t* ids, size_t count) const {
  std::vector<uint32_t> rankv;
  std::vector<int32_t> mergedv;
  int32_t merged_buf[64];
  uint32_t rank_buf[64];
  int32_t* merged = merged_buf;
  uint32_t* rank = rank_buf;
  if (count > 64) {
    rankv.resize(count);
    mergedv.resize(count);
    rank = rankv.data();
    merged = mergedv.data();
  }
  auto pair_rank = [&](size_t i) {
    uint32_t r;
    int32_t m;
    if (merges_.find(ids[i], ids[i + 1], r, m)) {
      rank[i] = r;
      merged[i] = m;
    } else {
      rank[i] = kNoRank;
    }
  };
  for (size_t i = 0; i + 1 < count; ++i) pair_rank(i);
  while (count > 1) {
    size_t best = 0;
    uint32_t best_rank = rank[0];
    for (size_t i = 1; i + 1 < count; ++i) {
      if (rank[i] < best_rank) {
        best_rank = rank[i];
        best = i;
      }
    }
    if (best_rank == kNoRank) break;
    ids[best] = merged[best];
    for (size_t i = best + 1; i + 1 < count; ++i) {
      ids[i] = ids[i + 1];
      rank[i] = rank[i + 1];
      merged[i] = merged[i + 1];
    }
    --count;
    if (best > 0) pair_rank(best - 1);
    if (best + 1 < count) pair_rank(best);
  }
  return count;
}

// The same merge order with a priority queue and a linked list (tokenizers' Word::merge_all):
// O(n log n), used for long pieces.
void BpeModel::merge_heap(const int32_t* ids, size_t n, std::vector<int32_t>& out) const {
  if (n == 0) return;
  struct Sym {
    int32_t id;
    int32_t prev, next;
    bool alive;
  };
  struct Merge {
    uint32_t rank;
    uint32_t pos;
    int32_t merged;
    bool operator>(const Merge& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::vector<Sym> sym(n);
  for (size_t i = 0; i < n; ++i) {
    sym[i] = Sym{ids[i], static_cast<int32_t>(i) - 1, i + 1 < n ? static_cast<int32_t>(i + 1) : -1,
                 true};
  }
  std::priority_queue<Merge, std::vector<Merge>, std::greater<Merge>> queue;
  for (size_t i = 0; i + 1 < n; ++i) {
    uint32_t r;
    int32_t m;
    if (merges_.find(sym[i].id, sym[i + 1].id, r, m))
      queue.push(Merge{r, static_cast<uint32_t>(i), m});
  }
  while (!queue.empty()) {
    const Merge top = queue.top();
    queue.pop();
    Sym& cur = sym[top.pos];
    if (!cur.alive || cur.next < 0) continue;
    const Sym right = sym[static_cast<size_t>(cur.next)];
    uint32_t r;
    int32_t m;
    if (!merges_.find(cur.id, right.id, r, m) || m != top.merged) continue;  // stale entry
    sym[static_cast<size_t>(cur.next)].alive = false;
    cur.id = top.merged;
    cur.next = right.next;
    if (right.next >= 0) sym[static_cast<size_t>(right.next)].prev = static_cast<int32_t>(top.pos);
    if (cur.prev >= 0 && merges_.find(sym[static_cast<size_t>(cur.prev)].id, cur.id, r, m))
      queue.push(Merge{r, static_cast<uint32_t>(cur.prev), m});
    if (cur.next >= 0 && merges_.find(cur.id, sym[static_cast<size_t>(cur.next)].id, r, m))
      queue.push(Merge{r, top.pos, m});
  }
  for (int32_t i = 0; i >= 0; i = sym[static_cast<size_t>(i)].next)
    out.push_back(sym[static_cast<size_t>(i)].id);
}

}  // namespace resp
