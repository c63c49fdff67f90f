#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <unordered_map>

#include "core/error.h"
#include "tokenizer/bpe.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/unicode.h"

namespace resp {

using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using StringMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

// Pre-tokens longer than this are not cached (long runs are rare and would bloat the cache).
constexpr size_t kMaxCachedPiece = 256;
// Vocabulary ids may leave gaps, but not so many that the id tables become huge: an id must lie
// below the number of entries plus this.
constexpr int64_t kMaxIdGap = int64_t{1} << 20;

// ---- UTF-8 helpers for the added-token rules ---------------------------------------------------

uint8_t flags_at(std::string_view s, size_t i, size_t& len) {
  const uint32_t cp = unicode::decode_utf8(s.data(), i, len);
  return unicode::char_flags(cp);
}

size_t prev_char_start(std::string_view s, size_t end) {
  size_t i = end - 1;
  while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
  return i;
}

// Rust regex `\w$` on s[0, end).
bool ends_with_word(std::string_view s, size_t end) {
  if (end == 0) return false;
  size_t len;
  return flags_at(s, prev_char_start(s, end), len) & unicode::kWord;
}
// Rust regex `^\w` on s[begin, ...).
bool starts_with_word(std::string_view s, size_t begin) {
  if (begin >= s.size()) return false;
  size_t len;
  return flags_at(s, begin, len) & unicode::kWord;
}
// Start of the trailing `\s*` of s[0, end).
size_t trailing_space_start(std::string_view s, size_t end) {
  while (end > 0) {
    const size_t p = prev_char_start(s, end);
    size_t len;
    if (!(flags_at(s, p, len) & unicode::kSpace)) break;
    end = p;
  }
  return end;
}
// End of the leading `\s*` of s[begin, ...).
size_t leading_space_end(std::string_view s, size_t begin) {
  while (begin < s.size()) {
    size_t len;
    if (!(flags_at(s, begin, len) & unicode::kSpace)) break;
    begin += len;
  }
  return begin;
}

// ---- JSON helpers -------------------------------------------------------------------------------

std::string read_text_file(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw IoError(cat("cannot open ", path.string()));
  f.seekg(0, std::ios::end);
  const std::streamoff size = f.tellg();
  f.seekg(0, std::ios::beg);
  std::string text(size > 0 ? static_cast<size_t>(size) : 0, '\0');
  f.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (f.bad() || f.gcount() != static_cast<std::streamsize>(text.size()))
    throw IoError(cat("cannot read ", path.string()));
  return text;
}

json parse_json_text(const std::string& text, const fs::path& path) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    throw FormatError(cat(path.string(), ": invalid JSON: ", e.what()));
  }
}

json read_json_file(const fs::path& path) {
  return parse_json_text(read_text_file(path), path);
}

std::string type_of(const json& j) {
  if (j.is_object()) {
    auto it = j.find("type");
    if (it != j.end() && it->is_string()) return it->get<std::string>();
  }
  return "";
}

bool get_bool(const json& obj, const char* key, bool dflt, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return dflt;
  if (!it->is_boolean()) throw FormatError(cat(where, ": \"", key, "\" must be a boolean"));
  return it->get<bool>();
}

// A special-token entry of tokenizer_config.json: a string, {"content": ...} or null.
std::string config_token(const json& cfg, const char* key, const std::string& where) {
  if (!cfg.is_object()) return "";
  auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) {
    auto c = it->find("content");
    if (c != it->end() && c->is_string()) return c->get<std::string>();
  }
  throw FormatError(cat(where, ": \"", key, "\" must be a string, {\"content\": ...} or null"));
}

// Leftmost-longest matching of a set of added tokens (Aho-Corasick LeftmostLongest semantics).
class AddedMatcher {
 public:
  void add(std::string content, int index) {
    if (content.empty()) return;
    entries_.push_back(Entry{std::move(content), index});
  }
  void build() {
    std::stable_sort(entries_.begin(), entries_.end(), [](const Entry& a, const Entry& b) {
      const auto fa = static_cast<unsigned char>(a.content[0]);
      const auto fb = static_cast<unsigned char>(b.content[0]);
      return fa != fb ? fa < fb : a.content.size() > b.content.size();
    });
    bucket_.fill(0);
    pair_.assign(65536 / 64, 0);
    for (const Entry& e : entries_) {
      const auto f = static_cast<unsigned char>(e.content[0]);
      first_[f] = 1;
      ++bucket_[f + 1u];
      if (e.content.size() == 1) {
        single_[f] = 1;
      } else {
        const unsigned p = f * 256u + static_cast<unsigned char>(e.content[1]);
        pair_[p / 64] |= uint64_t{1} << (p % 64);
      }
    }
    for (size_t i = 1; i < bucket_.size(); ++i) bucket_[i] += bucket_[i - 1];
  }
  bool empty() const { return entries_.empty(); }

  // The leftmost-longest match starting at or after `from`.
  bool find(std::string_view s, size_t from, size_t& start, size_t& end, int& index) const {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const size_t n = s.size();
    for (size_t i = from; i < n; ++i) {
      const unsigned f = p[i];
      if (!first_[f]) continue;
      if (!single_[f]) {
        if (i + 1 >= n) continue;
        const unsigned q = f * 256u + p[i + 1];
        if (!(pair_[q / 64] >> (q % 64) & 1)) continue;
      }
      for (uint32_t k = bucket_[f]; k < bucket_[f + 1]; ++k) {
        const std::string& c = entries_[k].content;
        if (c.size() <= n - i && std::memcmp(c.data(), p + i, c.size()) == 0) {
          start = i;
          end = i + c.size();
          index = entries_[k].index;
          return true;
        }
      }
    }
    return false;
  }

 private:
  struct Entry {
    std::string content;
    int index;
  };
  std::vector<Entry> entries_;
  std::array<uint8_t, 256> first_{}, single_{};
  std::array<uint32_t, 257> bucket_{};
  std::vector<uint64_t> pair_;
};

}  // namespace

// ---- Impl ---------------------------------------------------------------------------------------

struct Tokenizer::Impl {
  std::string source;
  std::optional<BpeModel> bpe;
  size_t num_merges = 0;
  size_t num_vocab = 0;
  bool ignore_merges = false;
  StringMap vocab_bytes;  // raw bytes -> id (only with ignore_merges)
  StringMap token_to_id;  // vocab strings and added-token contents
  std::vector<std::string> id_token, id_bytes;
  std::vector<uint8_t> id_valid, id_special;
  std::string model_desc;  // options of the BPE model worth naming in describe()
  Normalizer normalizer;
  std::optional<PreTokenizerChain> pretok;
  std::vector<AddedToken> added;
  AddedMatcher raw_matcher, normalized_matcher;
  std::vector<int32_t> prefix, suffix;
  std::string bos_token, eos_token, pad_token, chat_template;
  std::optional<int32_t> bos_id, pad_id;
  std::vector<int32_t> eos_ids;
  std::string post_desc;

  mutable std::mutex cache_mu;
  mutable WordCache cache;

  // Calls emit(begin, end, id) for each added-token match (id >= 0) and each stretch of text
  // between matches (id == -1), covering `s`.
  template <typename F>
  void split_added(std::string_view s, const AddedMatcher& m, bool split_special, F&& emit) const {
    size_t start_offset = 0, pos = 0, ms, me;
    int k;
    while (pos < s.size() && m.find(s, pos, ms, me, k)) {
      pos = me;
      const AddedToken& t = added[static_cast<size_t>(k)];
      if (split_special && t.special) continue;
      size_t start = ms, stop = me;
      if (t.single_word) {
        const bool start_space = start == 0 || !ends_with_word(s, start);
        const bool stop_space = stop == s.size() || !starts_with_word(s, stop);
        if (!start_space || !stop_space) continue;
      }
      if (t.lstrip) start = std::max(trailing_space_start(s, start), start_offset);
      if (t.rstrip) stop = leading_space_end(s, stop);
      if (start_offset < start) emit(start_offset, start, -1);
      emit(start, stop, t.id);
      start_offset = stop;
      pos = std::max(pos, stop);
    }
    if (start_offset < s.size()) emit(start_offset, s.size(), -1);
  }

  // The ids of one pre-token (raw bytes).
  void encode_piece(std::string_view piece, WordCache& cache_ref, std::vector<int32_t>& out) const {
    const BpeModel& model = *bpe;
    // A lone byte is its own token when every byte has one (also what ignore_merges finds).
    if (piece.size() == 1 && model.simple()) {
      out.push_back(model.byte_id(static_cast<uint8_t>(piece[0])));
      return;
    }
    if (ignore_merges) {  // tokenizers looks the whole pre-token up before anything else
      auto it = vocab_bytes.find(piece);
      if (it != vocab_bytes.end()) {
        out.push_back(it->second);
        return;
      }
    }
    const uint64_t h = WordCache::hash(piece);
    if (cache_ref.lookup(piece, h, out)) return;
    const size_t before = out.size();
    model.encode(piece, out);
    if (piece.size() <= kMaxCachedPiece)
      cache_ref.insert(piece, h, out.data() + before, out.size() - before);
  }

  void encode_words(std::string_view s, WordCache& cache_ref, std::vector<int32_t>& out) const {
    if (const PreTokenizer* m = pretok->single_regex()) {
      for (size_t i = 0; i < s.size();) {
        const size_t e = m->piece_end(s, i);
        encode_piece(s.substr(i, e - i), cache_ref, out);
        i = e;
      }
      return;
    }
    pretok->for_each(s, [&](std::string_view piece) { encode_piece(piece, cache_ref, out); });
  }

  void encode_text(std::string_view raw, bool split_special, WordCache& cache_ref,
                   std::vector<int32_t>& out) const {
    std::string normalized;
    std::string_view s = raw;
    if (normalizer.apply(raw, normalized)) s = normalized;
    if (normalized_matcher.empty()) {
      encode_words(s, cache_ref, out);
      return;
    }
    split_added(s, normalized_matcher, split_special, [&](size_t b, size_t e, int32_t id) {
      if (id >= 0) {
        out.push_back(id);
      } else {
        encode_words(s.substr(b, e - b), cache_ref, out);
      }
    });
  }

  int32_t lookup_config_token(const std::string& tok, const char* key,
                              const std::string& where) const {
    auto it = token_to_id.find(tok);
    if (it == token_to_id.end())
      throw FormatError(cat(where, ": ", key, " '", tok, "' is not a token of the vocabulary"));
    return it->second;
  }

  void check_id(int32_t id, const char* what) const {
    if (id < 0 || static_cast<size_t>(id) >= id_valid.size() || !id_valid[static_cast<size_t>(id)])
      throw UsageError(
          cat(what, ": token id ", id, " is not in the vocabulary (size ", id_valid.size(), ")"));
  }
};

// ---- loading ------------------------------------------------------------------------------------

namespace {

// Where a component of tokenizer.json has an optional string field.
std::string get_string(const json& obj, const char* key, const std::string& dflt,
                       const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return dflt;
  if (!it->is_string()) throw FormatError(cat(where, ": \"", key, "\" must be a string"));
  return it->get<std::string>();
}

// A {"String": s} or {"Regex": r} pattern of Split / Replace; sets `is_regex`.
std::string get_pattern(const json& obj, const std::string& where, bool& is_regex) {
  auto pat = obj.find("pattern");
  if (pat == obj.end() || !pat->is_object())
    throw FormatError(cat(where, " without a \"pattern\" object"));
  for (const char* kind : {"String", "Regex"}) {
    auto it = pat->find(kind);
    if (it != pat->end() && it->is_string()) {
      is_regex = kind[0] == 'R';
      return it->get<std::string>();
    }
  }
  throw FormatError(
      cat(where, ": pattern must be {\"String\": ...} or {\"Regex\": ...}, got ", pat->dump()));
}

constexpr const char* kSupportedNormalizers =
    "NFC, NFD, NFKC, NFKD, Lowercase, Prepend, Replace with a String pattern, Strip, Sequence";

void parse_normalizer(const json& n, const std::string& src, std::vector<NormStep>& steps) {
  if (n.is_null()) return;
  const std::string t = type_of(n);
  const std::string where = cat(src, ": normalizer ", t);
  NormStep st;
  if (t == "NFC" || t == "NFD" || t == "NFKC" || t == "NFKD") {
    st.kind = NormStep::Kind::Form;
    st.form = t == "NFC"    ? unicode::NormalForm::NFC
              : t == "NFD"  ? unicode::NormalForm::NFD
              : t == "NFKC" ? unicode::NormalForm::NFKC
                            : unicode::NormalForm::NFKD;
  } else if (t == "Lowercase") {
    st.kind = NormStep::Kind::Lowercase;
  } else if (t == "Prepend") {
    st.kind = NormStep::Kind::Prepend;
    st.text = get_string(n, "prepend", "", where);
  } else if (t == "Strip") {
    st.kind = NormStep::Kind::Strip;
    st.left = get_bool(n, "strip_left", false, where);
    st.right = get_bool(n, "strip_right", false, where);
  } else if (t == "Replace") {
    st.kind = NormStep::Kind::Replace;
    bool is_regex = false;
    st.pattern = get_pattern(n, where, is_regex);
    st.text = get_string(n, "content", "", where);
    if (is_regex)
      throw UnsupportedError(cat(src, ": unsupported normalizer 'Replace' with the Regex pattern '",
                                 st.pattern, "' (only String patterns are supported)"));
    if (st.pattern.empty())
      throw UnsupportedError(cat(src, ": unsupported normalizer 'Replace' with an empty pattern"));
  } else if (t == "Sequence") {
    auto it = n.find("normalizers");
    if (it == n.end() || !it->is_array())
      throw FormatError(cat(src, ": normalizer Sequence without a \"normalizers\" list"));
    for (const json& sub : *it) parse_normalizer(sub, src, steps);
    return;
  } else {
    throw UnsupportedError(cat(src, ": unsupported normalizer '", t.empty() ? n.dump() : t,
                               "' (supported: ", kSupportedNormalizers, ")"));
  }
  steps.push_back(std::move(st));
}

SplitBehavior get_behavior(const json& obj, const std::string& where, const char* dflt) {
  auto it = obj.find("behavior");
  const std::string name = it == obj.end() || it->is_null() ? std::string(dflt)
                           : it->is_string()                ? it->get<std::string>()
                                                            : "";
  auto b = parse_split_behavior(name);
  if (!b)
    throw FormatError(cat(where, ": unknown behavior ", it == obj.end() ? name : it->dump(),
                          " (Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous)"));
  return *b;
}

PreTokStep parse_split(const json& sp, const std::string& src) {
  const std::string where = src + ": Split pre-tokenizer";
  PreTokStep st;
  st.behavior = get_behavior(sp, where, "");
  st.invert = get_bool(sp, "invert", false, where);
  bool is_regex = false;
  const std::string pattern = get_pattern(sp, where, is_regex);
  if (!is_regex) {
    if (pattern.empty())
      throw UnsupportedError(cat(src, ": unsupported Split with an empty String pattern"));
    st.kind = PreTokStep::Kind::Literal;
    st.literal = pattern;
    return st;
  }
  auto p = recognise_split_pattern(pattern);
  if (!p)
    throw UnsupportedError(cat(src, ": unsupported Split regex '", pattern,
                               "' (supported: the Qwen2/Qwen2.5/Qwen3/DeepSeek-R1-Distill-Qwen, "
                               "Llama-3 and GPT-2 patterns, and String patterns)"));
  st.kind = PreTokStep::Kind::Regex;
  st.pattern = *p;
  return st;
}

constexpr const char* kSupportedPreTokenizers =
    "ByteLevel, Split (the Qwen2, Llama-3 and GPT-2 regexes, String patterns), Digits, "
    "Punctuation, Whitespace, WhitespaceSplit, and Sequences of these with one ByteLevel";

void parse_pre_tokenizer_step(const json& pt, const std::string& src,
                              std::vector<PreTokStep>& steps, bool& byte_level) {
  const std::string t = type_of(pt);
  const std::string where = cat(src, ": ", t, " pre-tokenizer");
  PreTokStep st;
  if (t == "ByteLevel") {
    if (byte_level)
      throw UnsupportedError(cat(src, ": unsupported pre_tokenizer with two ByteLevel steps"));
    byte_level = true;
    if (get_bool(pt, "add_prefix_space", false, where)) {
      st.kind = PreTokStep::Kind::PrefixSpace;
      steps.push_back(st);
    }
    if (get_bool(pt, "use_regex", true, where)) {
      st.kind = PreTokStep::Kind::Regex;
      st.pattern = SplitPattern::Gpt2;
      steps.push_back(st);
    }
    st.kind = PreTokStep::Kind::ByteLevel;
    steps.push_back(st);
    return;
  }
  if (t == "Sequence") {
    auto it = pt.find("pretokenizers");
    if (it == pt.end() || !it->is_array())
      throw FormatError(cat(src, ": pre_tokenizer Sequence without a \"pretokenizers\" list"));
    for (const json& sub : *it) parse_pre_tokenizer_step(sub, src, steps, byte_level);
    return;
  }
  if (t == "Split") {
    st = parse_split(pt, src);
    if (byte_level && st.kind == PreTokStep::Kind::Regex)
      throw UnsupportedError(cat(src,
                                 ": unsupported Split regex after the ByteLevel "
                                 "pre-tokenizer (it would see the byte-level alphabet)"));
  } else if (t == "Digits") {
    st.kind = PreTokStep::Kind::Digits;
    st.behavior = get_bool(pt, "individual_digits", false, where) ? SplitBehavior::Isolated
                                                                  : SplitBehavior::Contiguous;
  } else if (t == "Punctuation") {
    st.kind = PreTokStep::Kind::Punctuation;
    st.behavior = get_behavior(pt, where, "Isolated");
  } else if (t == "Whitespace") {
    st.kind = PreTokStep::Kind::Whitespace;
  } else if (t == "WhitespaceSplit") {
    st.kind = PreTokStep::Kind::WhitespaceSplit;
  } else {
    throw UnsupportedError(cat(src, ": unsupported pre_tokenizer '", t.empty() ? pt.dump() : t,
                               "' (supported: ", kSupportedPreTokenizers, ")"));
  }
  steps.push_back(std::move(st));
}

void parse_pre_tokenizer(Tokenizer::Impl& I, const json& pt, const std::string& src) {
  std::vector<PreTokStep> steps;
  bool byte_level = false;
  parse_pre_tokenizer_step(pt, src, steps, byte_level);
  if (!byte_level)
    throw UnsupportedError(cat(src,
                               ": unsupported pre_tokenizer without a ByteLevel step (only "
                               "byte-level BPE is supported)"));
  I.pretok.emplace(std::move(steps));
}

void parse_post_processor(Tokenizer::Impl& I, const json& pp, const std::string& src) {
  if (pp.is_null()) return;
  const std::string t = type_of(pp);
  if (t == "ByteLevel") return;  // only changes offsets
  if (t == "Sequence") {
    auto it = pp.find("processors");
    if (it == pp.end() || !it->is_array())
      throw FormatError(cat(src, ": post_processor Sequence without a \"processors\" list"));
    for (const json& sub : *it) parse_post_processor(I, sub, src);
    return;
  }
  if (t == "TemplateProcessing") {
    auto single = pp.find("single");
    if (single == pp.end() || !single->is_array())
      throw FormatError(cat(src, ": TemplateProcessing without a \"single\" list"));
    const json specials = pp.value("special_tokens", json::object());
    std::vector<int32_t> pre, post;
    bool seen_a = false;
    for (const json& item : *single) {
      if (item.contains("Sequence")) {
        if (item["Sequence"].value("id", std::string()) != "A" || seen_a)
          throw UnsupportedError(cat(src, ": TemplateProcessing single template ", single->dump()));
        seen_a = true;
      } else if (item.contains("SpecialToken")) {
        const std::string name = item["SpecialToken"].value("id", std::string());
        auto sp = specials.find(name);
        if (sp == specials.end() || !sp->contains("ids") || !(*sp)["ids"].is_array())
          throw FormatError(cat(src, ": TemplateProcessing special token '", name, "' has no ids"));
        for (const json& id : (*sp)["ids"]) {
          if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > 0x7fffffff)
            throw FormatError(cat(src, ": TemplateProcessing special token '", name,
                                  "' has an id that is not a non-negative integer: ", id.dump()));
          (seen_a ? post : pre).push_back(id.get<int32_t>());
        }
      } else {
        throw FormatError(cat(src, ": TemplateProcessing item ", item.dump()));
      }
    }
    if (!seen_a) throw FormatError(cat(src, ": TemplateProcessing single template without A"));
    I.prefix.insert(I.prefix.begin(), pre.begin(), pre.end());
    I.suffix.insert(I.suffix.end(), post.begin(), post.end());
    I.post_desc = "TemplateProcessing";
    return;
  }
  if (t == "RobertaProcessing" || t == "BertProcessing") {
    // single: cls A sep, with [token, id] pairs.
    int32_t ids[2];
    const char* keys[2] = {"cls", "sep"};
    for (int k = 0; k < 2; ++k) {
      auto it = pp.find(keys[k]);
      if (it == pp.end() || !it->is_array() || it->size() != 2 || !(*it)[1].is_number_integer() ||
          (*it)[1].get<int64_t>() < 0 || (*it)[1].get<int64_t>() > 0x7fffffff)
        throw FormatError(cat(src, ": ", t, " \"", keys[k], "\" must be [token, id]"));
      ids[k] = (*it)[1].get<int32_t>();
    }
    I.prefix.insert(I.prefix.begin(), ids[0]);
    I.suffix.push_back(ids[1]);
    I.post_desc = t;
    return;
  }
  throw UnsupportedError(cat(src, ": unsupported post_processor '", t.empty() ? pp.dump() : t,
                             "' (supported: ByteLevel, TemplateProcessing, RobertaProcessing, "
                             "BertProcessing, Sequence)"));
}

void parse_decoder(const json& d, const std::string& src) {
  const std::string t = type_of(d);
  if (t == "ByteLevel") return;
  if (t == "Sequence") {
    auto it = d.find("decoders");
    if (it != d.end() && it->is_array() && it->size() == 1) return parse_decoder((*it)[0], src);
  }
  throw UnsupportedError(cat(src, ": unsupported decoder '",
                             d.is_null() ? std::string("null") : (t.empty() ? d.dump() : t),
                             "' (supported: ByteLevel, a Sequence of one ByteLevel)"));
}

// The vocabulary and merges of a BPE model, gathered from a parsed DOM or streamed by LoaderSax.
struct RawBpe {
  std::vector<std::pair<std::string, int32_t>> vocab;
  std::vector<std::pair<std::string, std::string>> merges;
  bool have_vocab = false, have_merges = false;
};

bool split_merge_string(const std::string& s, std::pair<std::string, std::string>& out) {
  const size_t sp = s.find(' ');
  if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos) return false;
  out.first.assign(s, 0, sp);
  out.second.assign(s, sp + 1);
  return true;
}

RawBpe gather_bpe(const json& m, const std::string& src) {
  RawBpe raw;
  auto vit = m.find("vocab");
  if (vit == m.end() || !vit->is_object())
    throw FormatError(cat(src, ": model.vocab must be an object {token: id}"));
  raw.vocab.reserve(vit->size());
  for (auto it = vit->begin(); it != vit->end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 ||
        it.value().get<int64_t>() > 0x7fffffff)
      throw FormatError(cat(src, ": model.vocab['", it.key(), "'] must be a non-negative integer"));
    raw.vocab.emplace_back(it.key(), it.value().get<int32_t>());
  }
  auto mit = m.find("merges");
  if (mit == m.end() || !mit->is_array())
    throw FormatError(cat(src, ": model.merges must be a list"));
  raw.merges.reserve(mit->size());
  for (const json& mg : *mit) {
    std::pair<std::string, std::string> pr;
    if (mg.is_string()) {
      if (!split_merge_string(mg.get_ref<const std::string&>(), pr))
        throw FormatError(cat(src, ": model.merges[", raw.merges.size(), "] '",
                              mg.get<std::string>(), "' is not two tokens separated by one space"));
    } else if (mg.is_array() && mg.size() == 2 && mg[0].is_string() && mg[1].is_string()) {
      pr = {mg[0].get<std::string>(), mg[1].get<std::string>()};
    } else {
      throw FormatError(cat(src, ": model.merges[", raw.merges.size(),
                            "] must be \"a b\" or [\"a\", \"b\"], got ", mg.dump()));
    }
    raw.merges.push_back(std::move(pr));
  }
  raw.have_vocab = raw.have_merges = true;
  return raw;
}

void parse_model(Tokenizer::Impl& I, const json& m, const std::string& src, RawBpe* streamed) {
  if (!m.is_object()) throw FormatError(cat(src, ": missing or invalid \"model\" object"));
  std::string t = type_of(m);
  if (t.empty() && m.contains("merges")) t = "BPE";
  if (t != "BPE")
    throw UnsupportedError(
        cat(src, ": unsupported model type '", t.empty() ? "?" : t, "' (supported: BPE)"));
  const std::string where = src + ": model";
  if (auto d = m.find("dropout");
      d != m.end() && !d->is_null() && !(d->is_number() && d->get<double>() == 0.0))
    throw UnsupportedError(cat(src, ": BPE dropout is not supported"));
  const std::string prefix = get_string(m, "continuing_subword_prefix", "", where);
  const std::string suffix = get_string(m, "end_of_word_suffix", "", where);
  const bool byte_fallback = get_bool(m, "byte_fallback", false, where);
  const bool fuse_unk = get_bool(m, "fuse_unk", false, where);
  auto unk_it = m.find("unk_token");
  const bool has_unk = unk_it != m.end() && !unk_it->is_null();
  const std::string unk = get_string(m, "unk_token", "", where);
  I.ignore_merges = get_bool(m, "ignore_merges", false, where);

  RawBpe gathered;
  RawBpe& raw = streamed ? *streamed : (gathered = gather_bpe(m, src));
  // Ids index dense tables: refuse ids far beyond the number of entries (a corrupt or hostile
  // file could otherwise ask for gigabytes, or overflow at 2^31 - 1).
  const auto num_entries = static_cast<int64_t>(raw.vocab.size());
  int64_t max_id = -1;
  for (const auto& [tok, id] : raw.vocab) {
    if (id >= num_entries + kMaxIdGap)
      throw FormatError(cat(src, ": model.vocab['", tok, "'] has id ", id, ", far beyond the ",
                            num_entries, " entries of the vocabulary"));
    max_id = std::max<int64_t>(max_id, id);
  }
  I.id_token.assign(static_cast<size_t>(max_id + 1), std::string());
  I.id_valid.assign(static_cast<size_t>(max_id + 1), 0);
  I.token_to_id.reserve(raw.vocab.size() + 256);
  for (auto& [tok, id] : raw.vocab) {
    const auto uid = static_cast<size_t>(id);
    if (I.id_valid[uid])
      throw FormatError(cat(src, ": model.vocab: id ", id, " is used by both '", I.id_token[uid],
                            "' and '", tok, "'"));
    I.id_valid[uid] = 1;
    I.token_to_id.emplace(tok, id);
    I.id_token[uid] = std::move(tok);
  }
  I.num_vocab = raw.vocab.size();

  // The initial symbol of each byte at each position of a pre-token (tokenizers' merge_word): the
  // character with the subword prefix / word suffix where they apply; a string that is not in the
  // vocabulary falls back to its <0xXX> byte tokens (byte_fallback), else to unk_token, else is
  // dropped. Real byte-level vocabularies can lack byte tokens (SmolLM2 lacks 21).
  BpeSymbols syms;
  syms.fuse_unk = fuse_unk;
  if (has_unk) {
    auto it = I.token_to_id.find(unk);
    if (it != I.token_to_id.end()) {
      syms.unk_id = it->second;
    } else {
      syms.unk_missing = true;
      syms.unk_error =
          cat(src, ": model.unk_token '", unk,
              "' is not in the vocabulary, and the text has a character that needs it");
    }
  }
  size_t missing_bytes = 0;
  for (size_t pos = 0; pos < 4; ++pos) {
    const bool first = pos & 1, last = pos & 2;
    for (int b = 0; b < 256; ++b) {
      std::string str = first ? std::string() : prefix;
      unicode::append_utf8(str, byte_to_unicode(static_cast<uint8_t>(b)));
      if (last) str += suffix;
      int32_t entry = BpeSymbols::kUnknown;
      if (auto it = I.token_to_id.find(str); it != I.token_to_id.end()) {
        entry = it->second;
      } else if (byte_fallback) {
        std::vector<int32_t> ids;
        for (const char c : str) {
          char name[8];
          std::snprintf(name, sizeof name, "<0x%02X>",
                        static_cast<unsigned>(static_cast<uint8_t>(c)));
          auto fb = I.token_to_id.find(std::string_view(name));
          if (fb == I.token_to_id.end()) break;
          ids.push_back(fb->second);
        }
        if (ids.size() == str.size()) {
          entry = BpeSymbols::kFallback - static_cast<int32_t>(syms.fallback.size());
          syms.fallback.push_back(std::move(ids));
        }
      }
      if (pos == BpeSymbols::position(true, false) && entry < 0) ++missing_bytes;
      syms.table[pos][static_cast<size_t>(b)] = entry;
    }
  }

  MergeMap merges;
  merges.reserve(raw.merges.size());
  std::string joined;
  uint32_t rank = 0;
  for (const auto& [left, right] : raw.merges) {
    // As in tokenizers, the merged token is left + right without the subword prefix's length.
    if (right.size() < prefix.size())
      throw FormatError(cat(src, ": model.merges[", rank, "]: '", right,
                            "' is shorter than continuing_subword_prefix '", prefix, "'"));
    joined.assign(left).append(right, prefix.size(), std::string::npos);
    auto a = I.token_to_id.find(left), b = I.token_to_id.find(right),
         c = I.token_to_id.find(joined);
    const std::string* names[3] = {&left, &right, &joined};
    for (const auto& [it, tok] :
         {std::pair{a, names[0]}, std::pair{b, names[1]}, std::pair{c, names[2]}}) {
      if (it == I.token_to_id.end())
        throw FormatError(
            cat(src, ": model.merges[", rank, "]: token '", *tok, "' is not in the vocab"));
    }
    merges.insert(a->second, b->second, rank, c->second);
    ++rank;
  }
  I.num_merges = rank;
  I.bpe.emplace(std::move(syms), std::move(merges));

  std::vector<std::string> opts;
  if (I.ignore_merges) opts.push_back("ignore_merges");
  if (has_unk) opts.push_back(cat("unk_token '", unk, "'", fuse_unk ? " fused" : ""));
  if (byte_fallback) opts.push_back("byte_fallback");
  if (!prefix.empty()) opts.push_back(cat("continuing_subword_prefix '", prefix, "'"));
  if (!suffix.empty()) opts.push_back(cat("end_of_word_suffix '", suffix, "'"));
  if (missing_bytes) opts.push_back(cat(missing_bytes, " byte tokens missing"));
  for (const std::string& o : opts) I.model_desc += ", " + o;

  I.id_bytes.assign(I.id_token.size(), std::string());
  for (size_t id = 0; id < I.id_token.size(); ++id) {
    if (!I.id_valid[id]) continue;
    if (byte_level_decode(I.id_token[id], I.id_bytes[id])) {
      // Only strings of the byte alphabet can equal a pre-token, which is always in it.
      if (I.ignore_merges) I.vocab_bytes.emplace(I.id_bytes[id], static_cast<int32_t>(id));
    } else {
      I.id_bytes[id] = I.id_token[id];
    }
  }
}

// Streams tokenizer.json: model.vocab and model.merges (almost all of the file) go straight into a
// RawBpe, everything else into a small DOM. Anything unusual in vocab or merges aborts the parse
// (`fallback`), and the loader re-reads the file as a full DOM to report the exact problem.
class LoaderSax final : public nlohmann::json_sax<json> {
 public:
  json root;
  RawBpe raw;
  bool fallback = false;
  std::string error;  // JSON syntax error

  bool null() override { return value(json(nullptr)); }
  bool boolean(bool v) override { return value(json(v)); }
  bool number_integer(number_integer_t v) override {
    if (mode_ == Mode::Vocab) return vocab_id(v);
    return value(json(v));
  }
  bool number_unsigned(number_unsigned_t v) override {
    if (mode_ == Mode::Vocab)
      return vocab_id(v > 0x7fffffffu ? -1 : static_cast<number_integer_t>(v));
    return value(json(v));
  }
  bool number_float(number_float_t v, const string_t&) override { return value(json(v)); }
  bool binary(binary_t&) override { return abort(); }
  bool string(string_t& s) override {
    if (mode_ == Mode::Merges) {
      std::pair<std::string, std::string> pr;
      if (!split_merge_string(s, pr)) return abort();
      raw.merges.push_back(std::move(pr));
      return true;
    }
    if (mode_ == Mode::Pair) {
      pair_.push_back(std::move(s));
      return pair_.size() <= 2 || abort();
    }
    return value(json(std::move(s)));
  }
  bool start_object(std::size_t) override {
    if (expect_ == Expect::Vocab) {
      expect_ = Expect::None;
      mode_ = Mode::Vocab;
      (*model_)["vocab"] = json::object();
      return true;
    }
    if (mode_ != Mode::Dom || expect_ != Expect::None) return abort();
    const bool is_model = stack_.size() == 1 && stack_[0]->is_object() && key_ == "model";
    json* obj = insert(json::object());
    stack_.push_back(obj);
    if (is_model) model_ = obj;
    return true;
  }
  bool key(string_t& k) override {
    if (mode_ == Mode::Vocab) {
      vocab_key_ = std::move(k);
      return true;
    }
    key_ = std::move(k);
    if (model_ && stack_.size() == 2 && stack_.back() == model_) {
      if (key_ == "vocab") expect_ = Expect::Vocab;
      if (key_ == "merges") expect_ = Expect::Merges;
    }
    return true;
  }
  bool end_object() override {
    if (mode_ == Mode::Vocab) {
      mode_ = Mode::Dom;
      raw.have_vocab = true;
      return true;
    }
    if (mode_ != Mode::Dom) return abort();
    stack_.pop_back();
    return true;
  }
  bool start_array(std::size_t) override {
    if (expect_ == Expect::Merges) {
      expect_ = Expect::None;
      mode_ = Mode::Merges;
      (*model_)["merges"] = json::array();
      return true;
    }
    if (mode_ == Mode::Merges) {
      mode_ = Mode::Pair;
      pair_.clear();
      return true;
    }
    if (mode_ != Mode::Dom || expect_ != Expect::None) return abort();
    stack_.push_back(insert(json::array()));
    return true;
  }
  bool end_array() override {
    if (mode_ == Mode::Pair) {
      if (pair_.size() != 2) return abort();
      raw.merges.emplace_back(std::move(pair_[0]), std::move(pair_[1]));
      mode_ = Mode::Merges;
      return true;
    }
    if (mode_ == Mode::Merges) {
      mode_ = Mode::Dom;
      raw.have_merges = true;
      return true;
    }
    stack_.pop_back();
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    error = e.what();
    return false;
  }

 private:
  enum class Mode { Dom, Vocab, Merges, Pair };
  enum class Expect { None, Vocab, Merges };

  bool abort() {
    fallback = true;
    return false;
  }
  bool vocab_id(number_integer_t v) {
    if (v < 0 || v > 0x7fffffff) return abort();
    raw.vocab.emplace_back(std::move(vocab_key_), static_cast<int32_t>(v));
    return true;
  }
  // Adds `v` to the current container (or makes it the root); returns where it now lives.
  json* insert(json v) {
    if (stack_.empty()) {
      root = std::move(v);
      return &root;
    }
    json& top = *stack_.back();
    if (top.is_object()) return &(top[key_] = std::move(v));
    top.push_back(std::move(v));
    return &top.back();
  }
  bool value(json v) {
    if (mode_ != Mode::Dom || expect_ != Expect::None) return abort();
    insert(std::move(v));
    return true;
  }

  std::vector<json*> stack_;
  std::string key_, vocab_key_;
  std::vector<std::string> pair_;
  json* model_ = nullptr;
  Mode mode_ = Mode::Dom;
  Expect expect_ = Expect::None;
};

void parse_added_tokens(Tokenizer::Impl& I, const json& arr, const std::string& src) {
  if (arr.is_null()) return;
  if (!arr.is_array()) throw FormatError(cat(src, ": \"added_tokens\" must be a list"));
  for (size_t i = 0; i < arr.size(); ++i) {
    const json& a = arr[i];
    const std::string where = cat(src, ": added_tokens[", i, "]");
    if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() ||
        a["id"].get<int64_t>() < 0 || a["id"].get<int64_t>() > 0x7fffffff ||
        !a.contains("content") || !a["content"].is_string())
      throw FormatError(cat(where, " must have an integer \"id\" and a string \"content\""));
    AddedToken t;
    t.id = a["id"].get<int32_t>();
    t.content = a["content"].get<std::string>();
    t.special = get_bool(a, "special", false, where);
    t.lstrip = get_bool(a, "lstrip", false, where);
    t.rstrip = get_bool(a, "rstrip", false, where);
    t.single_word = get_bool(a, "single_word", false, where);
    t.normalized = get_bool(a, "normalized", !t.special, where);
    if (t.content.empty()) throw FormatError(cat(where, " has empty content"));
    I.added.push_back(std::move(t));
  }
  // Ids are assigned the way tokenizers' AddedVocabulary does it (the "id" fields are only
  // checked there, with a warning): a content already in the vocabulary keeps its vocab id, a new
  // one gets the next id after the vocabulary and the added tokens so far. Real tokenizer.json
  // files list consistent ids, so this only matters for hand-edited ones.
  std::vector<AddedToken> unique;
  int64_t max_added = -1;
  for (AddedToken& t : I.added) {
    bool dup = false;
    for (const AddedToken& u : unique) dup = dup || u.content == t.content;
    if (dup) continue;
    auto known = I.token_to_id.find(t.content);
    if (known != I.token_to_id.end()) {
      t.id = known->second;
    } else {
      const auto vs = static_cast<int64_t>(I.num_vocab);
      t.id = static_cast<int32_t>(max_added >= vs ? max_added + 1 : vs);
    }
    max_added = std::max<int64_t>(max_added, t.id);
    unique.push_back(std::move(t));
  }
  I.added = std::move(unique);
  for (size_t k = 0; k < I.added.size(); ++k) {
    const AddedToken& t = I.added[k];
    const auto id = static_cast<size_t>(t.id);
    if (id >= I.id_token.size()) {
      I.id_token.resize(id + 1);
      I.id_bytes.resize(id + 1);
      I.id_valid.resize(id + 1, 0);
    }
    // tokenizers matches `normalized` tokens in the normalized text with their content
    // normalized too, and (0.23 at least) decodes them as that normalized content.
    const std::string shown = t.normalized ? I.normalizer.apply_copy(t.content) : t.content;
    I.id_valid[id] = 1;
    I.id_token[id] = shown;
    if (!byte_level_decode(shown, I.id_bytes[id])) I.id_bytes[id] = shown;
    I.token_to_id[t.content] = t.id;
    if (t.normalized) {
      I.normalized_matcher.add(shown, static_cast<int>(k));
    } else {
      I.raw_matcher.add(t.content, static_cast<int>(k));
    }
  }
  I.raw_matcher.build();
  I.normalized_matcher.build();
  I.id_special.assign(I.id_token.size(), 0);
  for (const AddedToken& t : I.added)
    if (t.special) I.id_special[static_cast<size_t>(t.id)] = 1;
}

void parse_config(Tokenizer::Impl& I, const json& cfg, const std::string& where) {
  if (cfg.is_null()) return;
  if (!cfg.is_object()) throw FormatError(cat(where, ": must be a JSON object"));
  I.bos_token = config_token(cfg, "bos_token", where);
  I.eos_token = config_token(cfg, "eos_token", where);
  I.pad_token = config_token(cfg, "pad_token", where);
  if (!I.bos_token.empty()) I.bos_id = I.lookup_config_token(I.bos_token, "bos_token", where);
  if (!I.eos_token.empty())
    I.eos_ids.push_back(I.lookup_config_token(I.eos_token, "eos_token", where));
  if (!I.pad_token.empty()) I.pad_id = I.lookup_config_token(I.pad_token, "pad_token", where);

  // transformers' LlamaTokenizer(Fast) rebuilds the post-processor from add_bos_token /
  // add_eos_token (DeepSeek-R1-Distill uses this class); other classes keep tokenizer.json's.
  const std::string cls = cfg.value("tokenizer_class", std::string());
  if ((cls == "LlamaTokenizer" || cls == "LlamaTokenizerFast") &&
      (cfg.contains("add_bos_token") || cfg.contains("add_eos_token"))) {
    const bool add_bos = get_bool(cfg, "add_bos_token", true, where);
    const bool add_eos = get_bool(cfg, "add_eos_token", false, where);
    I.prefix.clear();
    I.suffix.clear();
    if (add_bos && I.bos_id) I.prefix.push_back(*I.bos_id);
    if (add_eos && !I.eos_ids.empty()) I.suffix.push_back(I.eos_ids[0]);
    I.post_desc = "add_bos_token/add_eos_token";
  }

  if (auto ct = cfg.find("chat_template"); ct != cfg.end() && !ct->is_null()) {
    if (ct->is_string()) {
      I.chat_template = ct->get<std::string>();
    } else if (ct->is_array()) {
      for (const json& e : *ct) {
        if (e.is_object() && e.value("name", std::string()) == "default" &&
            e.contains("template") && e["template"].is_string())
          I.chat_template = e["template"].get<std::string>();
      }
      if (I.chat_template.empty())
        throw FormatError(cat(where, ": chat_template list has no \"default\" template"));
    } else {
      throw FormatError(cat(where, ": chat_template must be a string or a list"));
    }
  }
}

}  // namespace

namespace {

std::shared_ptr<Tokenizer::Impl> build_impl(const json& tj, const json& config,
                                            const std::string& source, RawBpe* streamed) {
  auto impl = std::make_shared<Tokenizer::Impl>();
  Tokenizer::Impl& I = *impl;
  I.source = source;
  if (!tj.is_object()) throw FormatError(cat(source, ": must be a JSON object"));
  auto field = [&](const char* key) -> const json& {
    static const json null_json;
    auto it = tj.find(key);
    return it == tj.end() ? null_json : *it;
  };
  if (!tj.contains("model")) throw FormatError(cat(source, ": missing \"model\""));
  parse_model(I, tj["model"], source, streamed);
  std::vector<NormStep> norm_steps;
  parse_normalizer(field("normalizer"), source, norm_steps);
  I.normalizer = Normalizer(std::move(norm_steps));
  const json& pt = field("pre_tokenizer");
  if (pt.is_null())
    throw UnsupportedError(cat(source,
                               ": a null pre_tokenizer is not supported (byte-level BPE "
                               "needs a ByteLevel pre-tokenizer)"));
  parse_pre_tokenizer(I, pt, source);
  parse_post_processor(I, field("post_processor"), source);
  parse_decoder(field("decoder"), source);
  parse_added_tokens(I, field("added_tokens"), source);
  for (const auto* ids : {&I.prefix, &I.suffix})
    for (const int32_t id : *ids)
      if (static_cast<size_t>(id) >= I.id_valid.size() || !I.id_valid[static_cast<size_t>(id)])
        throw FormatError(
            cat(source, ": post_processor adds the id ", id, ", which is not in the vocabulary"));
  parse_config(I, config, source + " (tokenizer_config)");
  return impl;
}

}  // namespace

Tokenizer Tokenizer::from_json(const json& tj, const json& config, const std::string& source) {
  return Tokenizer(build_impl(tj, config, source, nullptr));
}

Tokenizer Tokenizer::load(const fs::path& dir) {
  const fs::path tj_path = dir / "tokenizer.json";
  if (!fs::exists(tj_path)) throw IoError(cat("no tokenizer.json in ", dir.string()));
  // Fast path: stream vocab and merges (no DOM for them); fall back to a full DOM parse when the
  // streaming loader meets something it does not expect, so errors are reported the same way.
  std::string text = read_text_file(tj_path);
  LoaderSax sax;
  const bool streamed = json::sax_parse(text, &sax);
  if (!streamed && !sax.fallback)
    throw FormatError(cat(tj_path.string(), ": invalid JSON: ", sax.error));
  const bool use_sax = streamed && sax.raw.have_vocab && sax.raw.have_merges;
  json dom;
  if (!use_sax) dom = parse_json_text(text, tj_path);
  text.clear();
  text.shrink_to_fit();
  json config;
  const fs::path cfg_path = dir / "tokenizer_config.json";
  if (fs::exists(cfg_path)) config = read_json_file(cfg_path);
  // As in transformers, a chat_template.jinja file takes priority over the config's template.
  if (const fs::path jinja = dir / "chat_template.jinja"; fs::exists(jinja)) {
    if (!config.is_object()) config = json::object();
    config["chat_template"] = read_text_file(jinja);
  }
  auto impl = use_sax ? build_impl(sax.root, config, tj_path.string(), &sax.raw)
                      : build_impl(dom, config, tj_path.string(), nullptr);

  // generation_config.json may list more end-of-turn ids (Llama-3 Instruct: eos_token_id list).
  const fs::path gen_path = dir / "generation_config.json";
  if (fs::exists(gen_path)) {
    const json gen = read_json_file(gen_path);
    std::vector<int32_t> extra;
    // An id that is not a token here would end gold calibration samples with it (and index
    // past the embeddings): refuse it rather than truncate it to 32 bits.
    auto add = [&](const json& x) {
      const int64_t id = x.get<int64_t>();
      if (id < 0 || static_cast<uint64_t>(id) >= impl->id_valid.size() ||
          !impl->id_valid[static_cast<size_t>(id)])
        throw FormatError(cat(gen_path.string(), ": eos_token_id ", x.dump(),
                              " is not a token of this tokenizer"));
      extra.push_back(static_cast<int32_t>(id));
    };
    if (gen.is_object() && gen.contains("eos_token_id")) {
      const json& e = gen["eos_token_id"];
      if (e.is_number_integer()) {
        add(e);
      } else if (e.is_array()) {
        for (const json& x : e)
          if (x.is_number_integer()) add(x);
      }
    }
    for (int32_t id : extra)
      if (std::find(impl->eos_ids.begin(), impl->eos_ids.end(), id) == impl->eos_ids.end())
        impl->eos_ids.push_back(id);
  }
  return Tokenizer(std::move(impl));
}

// ---- encode / decode ----------------------------------------------------------------------------

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special) const {
  EncodeOptions o;
  o.add_special = add_special;
  return encode(text, o);
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, const EncodeOptions& opts) const {
  const Impl& I = *impl_;
  const size_t bad = unicode::find_invalid_utf8(text);
  if (bad != std::string_view::npos)
    throw FormatError(cat("tokenize: the text is not valid UTF-8 (byte offset ", bad, ")"));
  std::vector<int32_t> out;
  out.reserve(text.size() / 4 + 8);
  if (opts.add_special) out.insert(out.end(), I.prefix.begin(), I.prefix.end());

  // Concurrent callers do not wait for the shared cache: they use a private one.
  std::unique_lock<std::mutex> lock(I.cache_mu, std::try_to_lock);
  WordCache local(size_t{1} << 16);
  WordCache& cache = lock.owns_lock() ? I.cache : local;

  if (I.raw_matcher.empty()) {
    I.encode_text(text, opts.split_special, cache, out);
  } else {
    I.split_added(text, I.raw_matcher, opts.split_special, [&](size_t b, size_t e, int32_t id) {
      if (id >= 0) {
        out.push_back(id);
      } else {
        I.encode_text(text.substr(b, e - b), opts.split_special, cache, out);
      }
    });
  }
  if (opts.add_special) out.insert(out.end(), I.suffix.begin(), I.suffix.end());
  return out;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  const Impl& I = *impl_;
  std::string bytes;
  bytes.reserve(ids.size() * 4);
  for (const int32_t id : ids) {
    I.check_id(id, "detokenize");
    if (skip_special && I.id_special[static_cast<size_t>(id)]) continue;
    bytes += I.id_bytes[static_cast<size_t>(id)];
  }
  std::string out;
  out.reserve(bytes.size());
  unicode::append_lossy_utf8(out, bytes, true);
  return out;
}

const std::string& Tokenizer::token_bytes(int32_t id) const {
  impl_->check_id(id, "token_bytes");
  return impl_->id_bytes[static_cast<size_t>(id)];
}

const std::string& Tokenizer::token(int32_t id) const {
  static const std::string empty;
  if (id < 0 || static_cast<size_t>(id) >= impl_->id_token.size()) return empty;
  return impl_->id_token[static_cast<size_t>(id)];
}

std::optional<int32_t> Tokenizer::token_id(std::string_view token) const {
  auto it = impl_->token_to_id.find(token);
  if (it == impl_->token_to_id.end()) return std::nullopt;
  return it->second;
}

bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && static_cast<size_t>(id) < impl_->id_special.size() &&
         impl_->id_special[static_cast<size_t>(id)];
}

int32_t Tokenizer::vocab_size() const {
  return static_cast<int32_t>(impl_->id_token.size());
}
std::optional<int32_t> Tokenizer::bos_id() const {
  return impl_->bos_id;
}
std::optional<int32_t> Tokenizer::pad_id() const {
  return impl_->pad_id;
}
const std::vector<int32_t>& Tokenizer::eos_ids() const {
  return impl_->eos_ids;
}
const std::string& Tokenizer::bos_token() const {
  return impl_->bos_token;
}
const std::string& Tokenizer::eos_token() const {
  return impl_->eos_token;
}
const std::vector<int32_t>& Tokenizer::special_prefix() const {
  return impl_->prefix;
}
const std::vector<int32_t>& Tokenizer::special_suffix() const {
  return impl_->suffix;
}
const std::string& Tokenizer::chat_template() const {
  return impl_->chat_template;
}
const std::vector<AddedToken>& Tokenizer::added_tokens() const {
  return impl_->added;
}

std::string Tokenizer::describe() const {
  const Impl& I = *impl_;
  std::string special;
  for (int32_t id : I.prefix) special += I.id_token[static_cast<size_t>(id)] + " ";
  special += "A";
  for (int32_t id : I.suffix) special += " " + I.id_token[static_cast<size_t>(id)];
  return cat("BPE (", I.num_vocab, " tokens, ", I.num_merges, " merges", I.model_desc,
             "), normalizer ", I.normalizer.describe(), ", pre-tokenizer ", I.pretok->describe(),
             ", ", I.added.size(), " added tokens, vocab size ", vocab_size(),
             ", special tokens \"", special, "\"",
             I.post_desc.empty() ? "" : " (" + I.post_desc + ")");
}

// ---- streaming ----------------------------------------------------------------------------------

std::string StreamDecoder::push(int32_t id) {
  const std::string& b = tok_.token_bytes(id);
  if (skip_special_ && tok_.is_special(id)) return {};
  pending_ += b;
  std::string out;
  const size_t used = unicode::append_lossy_utf8(out, pending_, false);
  pending_.erase(0, used);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out;
  unicode::append_lossy_utf8(out, pending_, true);
  pending_.clear();
  return out;
}

}  // namespace resp
