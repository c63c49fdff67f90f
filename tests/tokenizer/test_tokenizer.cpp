// Tokenizer tests: the 47-case vectors, ids rendered by Hugging Face tokenizers on a Unicode-heavy
// corpus and random strings, the pre-tokenizer splits, added-token rules, round trips, streaming
// decode and malformed tokenizer.json files.
#include <gtest/gtest.h>

#include <sstream>
#include <thread>

#include "core/error.h"
#include "tok_fixtures.h"
#include "tokenizer/bpe.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace resp {
namespace {

using nlohmann::json;
using toktest::fixture_tokenizer;
using toktest::load_json;
using toktest::slurp;
using toktest::tok_fixtures;

std::vector<std::string> split_on(const std::string& s, const std::string& sep) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (true) {
    const size_t e = s.find(sep, pos);
    if (e == std::string::npos) {
      out.push_back(s.substr(pos));
      return out;
    }
    out.push_back(s.substr(pos, e - pos));
    pos = e + sep.size();
  }
}

std::vector<int32_t> parse_ids(const std::string& line) {
  std::istringstream is(line);
  std::vector<int32_t> ids;
  int32_t v;
  while (is >> v) ids.push_back(v);
  return ids;
}

// Runs a ggml vocab test file pair; returns the number of matching cases.
void check_vectors(const Tokenizer& tok, const std::string& name) {
  const auto dir = tok_fixtures() / "vectors";
  const auto inputs =
      split_on(slurp(dir / ("ggml-vocab-" + name + ".gguf.inp")), "\n__ggml_vocab_test__\n");
  const auto outputs = split_on(slurp(dir / ("ggml-vocab-" + name + ".gguf.out")), "\n");
  ASSERT_EQ(inputs.size(), 47u);
  ASSERT_EQ(outputs.size(), inputs.size());
  size_t ok = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const auto got = tok.encode(inputs[i]);
    const auto want = parse_ids(outputs[i]);
    if (got == want) {
      ++ok;
    } else {
      ADD_FAILURE() << name << " case " << i << " '" << inputs[i] << "'";
    }
  }
  EXPECT_EQ(ok, 47u) << name;
  std::cout << "[ vectors  ] " << name << ": " << ok << "/47\n";
}

const Tokenizer& qwen3() {
  return *fixture_tokenizer("qwen3");
}

// ---- vectors -----------------------------------------------------------------------------------

TEST(TokenizerVectors, Qwen2VectorsWithQwen3) {
  check_vectors(qwen3(), "qwen2");
}
TEST(TokenizerVectors, DeepSeekR1QwenVectorsWithQwen3) {
  check_vectors(qwen3(), "deepseek-r1-qwen");
}
TEST(TokenizerVectors, DeepSeekR1QwenVectorsWithDeepSeekTokenizer) {
  check_vectors(*fixture_tokenizer("deepseek_r1"), "deepseek-r1-qwen");
}
TEST(TokenizerVectors, Qwen2AndDeepSeekVectorsWithQwen25) {
  const Tokenizer* t = fixture_tokenizer("qwen2_5");
  if (!t) GTEST_SKIP() << "../shared/tokenizers/qwen2_5 not present";
  check_vectors(*t, "qwen2");
  check_vectors(*t, "deepseek-r1-qwen");
}
TEST(TokenizerVectors, LlamaBpeVectorsWithLlama32) {
  const Tokenizer* t = fixture_tokenizer("llama3_2");
  if (!t) GTEST_SKIP() << "../shared/tokenizers/llama3_2 not present";
  check_vectors(*t, "llama-bpe");
}

// ---- ids rendered by HF tokenizers --------------------------------------------------------------

void check_encode_cases(const Tokenizer& tok, const std::string& key) {
  const json cases = load_json(tok_fixtures() / "encode_cases.json")["cases"];
  size_t ok = 0;
  for (const json& c : cases) {
    const std::string text = c["text"];
    const auto want = c[key].get<std::vector<int32_t>>();
    const bool special = key.ends_with("_special");
    const auto got = tok.encode(text, special);
    if (got == want) {
      ++ok;
    } else {
      ADD_FAILURE() << key << ": mismatch for " << json(text).dump();
    }
  }
  EXPECT_EQ(ok, cases.size());
}

TEST(TokenizerEncode, Qwen3MatchesHuggingFace) {
  check_encode_cases(qwen3(), "qwen3");
}
TEST(TokenizerEncode, Qwen25MatchesHuggingFace) {
  const Tokenizer* t = fixture_tokenizer("qwen2_5");
  if (!t) GTEST_SKIP() << "../shared/tokenizers/qwen2_5 not present";
  check_encode_cases(*t, "qwen2_5");
}
TEST(TokenizerEncode, Llama32MatchesHuggingFace) {
  const Tokenizer* t = fixture_tokenizer("llama3_2");
  if (!t) GTEST_SKIP() << "../shared/tokenizers/llama3_2 not present";
  check_encode_cases(*t, "llama3_2");
  check_encode_cases(*t, "llama3_2_special");
}

TEST(TokenizerEncode, RoundTripIsNfc) {
  const json cases = load_json(tok_fixtures() / "encode_cases.json")["cases"];
  std::vector<const Tokenizer*> toks = {&qwen3(), fixture_tokenizer("deepseek_r1")};
  for (const Tokenizer* t : toks) {
    for (const json& c : cases) {
      const std::string text = c["text"];
      const std::string nfc = unicode::to_nfc(text);
      EXPECT_EQ(nfc, c["nfc"].get<std::string>()) << "ICU and Python NFC differ";
      EXPECT_EQ(t->decode(t->encode(text)), nfc) << json(text).dump();
    }
  }
  // The Llama-3 tokenizer has no normalizer: decode(encode(x)) == x.
  if (const Tokenizer* l = fixture_tokenizer("llama3_2")) {
    for (const json& c : cases) {
      const std::string text = c["text"];
      EXPECT_EQ(l->decode(l->encode(text)), text);
    }
  }
}

TEST(TokenizerEncode, NfcIsApplied) {
  // "e" + COMBINING ACUTE encodes like the precomposed "é".
  EXPECT_EQ(qwen3().encode("caf\x65\xCC\x81"), qwen3().encode("caf\xC3\xA9"));
  EXPECT_EQ(unicode::to_nfc("\xE1\x84\x80\xE1\x85\xA1"), "\xEA\xB0\x80");  // jamo -> 가
}

TEST(TokenizerEncode, SpecialTokensAndOptions) {
  const Tokenizer& t = qwen3();
  const auto ids = t.encode("<|im_start|>user\nHi<|im_end|>");
  ASSERT_GE(ids.size(), 3u);
  EXPECT_EQ(ids.front(), 151644);
  EXPECT_EQ(ids.back(), 151645);
  EncodeOptions o;
  o.split_special = true;
  const auto plain = t.encode("<|im_start|><think>", o);
  EXPECT_NE(plain.front(), 151644);                       // special token treated as text
  EXPECT_EQ(plain.back(), 151667);                        // <think> is not special: still matched
  EXPECT_EQ(t.encode("hello", true), t.encode("hello"));  // Qwen adds no BOS
  EXPECT_TRUE(t.encode("").empty());
}

TEST(TokenizerEncode, InvalidUtf8IsAnError) {
  EXPECT_THROW(qwen3().encode("ab\xFF"
                              "cd"),
               FormatError);
  EXPECT_THROW(qwen3().encode("\xE4\xB8"), FormatError);
  EXPECT_THROW(qwen3().encode("\xED\xA0\x80"), FormatError);  // surrogate
}

TEST(TokenizerEncode, ConcurrentEncodingAgrees) {
  const Tokenizer& t = qwen3();
  const json cases = load_json(tok_fixtures() / "encode_cases.json")["cases"];
  std::vector<std::vector<int32_t>> want;
  for (const json& c : cases) want.push_back(c["qwen3"].get<std::vector<int32_t>>());
  std::atomic<int> bad{0};
  auto work = [&] {
    for (int rep = 0; rep < 3; ++rep)
      for (size_t i = 0; i < cases.size(); ++i)
        if (t.encode(cases[i]["text"].get<std::string>()) != want[i]) ++bad;
  };
  std::thread a(work), b(work);
  a.join();
  b.join();
  EXPECT_EQ(bad.load(), 0);
}

// ---- pre-tokenizer -----------------------------------------------------------------------------

TEST(PreTokenizer, MatchesHuggingFaceSplits) {
  const json all = load_json(tok_fixtures() / "pretok_cases.json");
  for (const auto& [name, pattern] :
       {std::pair{"qwen2", SplitPattern::Qwen2}, std::pair{"llama3", SplitPattern::Llama3},
        std::pair{"gpt2", SplitPattern::Gpt2}}) {
    const PreTokenizer pt(pattern);
    size_t ok = 0;
    for (const json& c : all[name]) {
      const std::string text = c["text"];
      const auto want = c["pieces"].get<std::vector<std::string>>();
      const auto got_views = pt.split(text);
      const std::vector<std::string> got(got_views.begin(), got_views.end());
      if (got == want) {
        ++ok;
      } else {
        ADD_FAILURE() << name << ": " << json(text).dump() << "\n got " << json(got).dump()
                      << "\nwant " << json(want).dump();
      }
    }
    EXPECT_EQ(ok, all[name].size()) << name;
  }
}

TEST(PreTokenizer, RecognisesExactPatterns) {
  for (auto p : {SplitPattern::Qwen2, SplitPattern::Llama3, SplitPattern::Gpt2})
    EXPECT_EQ(recognise_split_pattern(split_pattern_regex(p)), p);
  EXPECT_FALSE(
      recognise_split_pattern(std::string(split_pattern_regex(SplitPattern::Qwen2)) + "|x"));
  EXPECT_FALSE(recognise_split_pattern("\\p{N}{1,3}"));
}

TEST(PreTokenizer, Examples) {
  const PreTokenizer q(SplitPattern::Qwen2), l(SplitPattern::Llama3);
  using V = std::vector<std::string_view>;
  EXPECT_EQ(q.split("12345"), (V{"1", "2", "3", "4", "5"}));
  EXPECT_EQ(l.split("12345"), (V{"123", "45"}));
  EXPECT_EQ(q.split("  hello\n\n  world"), (V{" ", " hello", "\n\n", " ", " world"}));
  EXPECT_EQ(q.split("I'LL don't"), (V{"I", "'LL", " don", "'t"}));
}

// ---- BPE
// -----------------------------------------------------------------------------------------

TEST(Bpe, ByteAlphabetRoundTrips) {
  for (int b = 0; b < 256; ++b) {
    const std::string s(1, static_cast<char>(b));
    std::string back;
    ASSERT_TRUE(byte_level_decode(byte_level_encode(s), back));
    EXPECT_EQ(back, s);
  }
  EXPECT_EQ(byte_level_encode(" hello\n"), "\xC4\xA0hello\xC4\x8A");  // "Ġhello" + "Ċ"
}

TEST(Bpe, ScanAndHeapMergeLoopsAgree) {
  // Build the Qwen3 merge table through the tokenizer, then compare both loops on every
  // pre-token of the corpus (and on long synthetic words).
  const Tokenizer& t = qwen3();
  const json tj = load_json(tok_fixtures() / "qwen3/tokenizer.json");
  std::array<int32_t, 256> byte_ids{};
  for (int b = 0; b < 256; ++b)
    byte_ids[static_cast<size_t>(b)] = *t.token_id(byte_level_encode(std::string(1, char(b))));
  MergeMap mm;
  uint32_t rank = 0;
  for (const json& m : tj["model"]["merges"]) {
    const std::string a = m[0], b = m[1];
    mm.insert(*t.token_id(a), *t.token_id(b), rank++, *t.token_id(a + b));
  }
  const BpeModel bpe(byte_ids, std::move(mm));
  const PreTokenizer pt(SplitPattern::Qwen2);
  const json cases = load_json(tok_fixtures() / "encode_cases.json")["cases"];
  std::vector<std::string> words;
  for (const json& c : cases) {
    const std::string text = unicode::to_nfc(c["text"].get<std::string>());
    for (auto w : pt.split(text)) words.emplace_back(w);
  }
  words.push_back(std::string(300, 'a'));
  words.push_back(
      "supercalifragilisticexpialidocious_antidisestablishmentarianism_"
      "pneumonoultramicroscopicsilicovolcanoconiosis");
  size_t n = 0;
  for (const std::string& w : words) {
    std::vector<int32_t> a, b;
    bpe.encode_scan(w, a);
    bpe.encode_heap(w, b);
    EXPECT_EQ(a, b) << json(w).dump();
    ++n;
  }
  EXPECT_GT(n, 1000u);
}

// ---- added tokens
// --------------------------------------------------------------------------------

TEST(TokenizerAdded, LstripRstripSingleWordNormalized) {
  const json fx = load_json(tok_fixtures() / "added_cases.json");
  json tj = load_json(tok_fixtures() / "qwen3/tokenizer.json");
  for (const json& e : fx["extra_added_tokens"]) tj["added_tokens"].push_back(e);
  const Tokenizer t = Tokenizer::from_json(tj, json(), "qwen3+extra");
  EncodeOptions split;
  split.split_special = true;
  for (const json& c : fx["cases"]) {
    const std::string text = c["text"];
    EXPECT_EQ(t.encode(text), c["ids"].get<std::vector<int32_t>>()) << json(text).dump();
    EXPECT_EQ(t.encode(text, split), c["ids_split_special"].get<std::vector<int32_t>>())
        << "split_special " << json(text).dump();
  }
}

// ---- decode
// ----------------------------------------------------------------------------------------

TEST(TokenizerDecode, Basics) {
  const Tokenizer& t = qwen3();
  const auto ids = t.encode("<|im_start|>Hello 世界 😀<|im_end|>");
  EXPECT_EQ(t.decode(ids), "<|im_start|>Hello 世界 😀<|im_end|>");
  EXPECT_EQ(t.decode(ids, /*skip_special=*/true), "Hello 世界 😀");
  EXPECT_THROW(t.decode(std::vector<int32_t>{-1}), UsageError);
  EXPECT_THROW(t.decode(std::vector<int32_t>{t.vocab_size()}), UsageError);
  // A lone continuation byte and a truncated sequence decode to U+FFFD, like from_utf8_lossy.
  const int32_t b80 = *t.token_id(byte_level_encode("\x80"));
  const int32_t be4 = *t.token_id(byte_level_encode("\xE4"));
  EXPECT_EQ(t.decode(std::vector<int32_t>{b80}), "\xEF\xBF\xBD");
  EXPECT_EQ(t.decode(std::vector<int32_t>{be4, *t.token_id("a")}),
            "\xEF\xBF\xBD"
            "a");
  EXPECT_EQ(t.token(151644), "<|im_start|>");
  EXPECT_EQ(t.token_bytes(*t.token_id("\xC4\xA0hello")), " hello");
}

TEST(TokenizerDecode, LossyUtf8MatchesMaximalSubpartRule) {
  auto lossy = [](std::string_view in) {
    std::string out;
    unicode::append_lossy_utf8(out, in, true);
    return out;
  };
  const std::string R = "\xEF\xBF\xBD";
  EXPECT_EQ(lossy("a\xF0\x9F\x98"), "a" + R);                // truncated 4-byte: one U+FFFD
  EXPECT_EQ(lossy("\xE0\x80\x80"), R + R + R);               // overlong: each byte
  EXPECT_EQ(lossy("\xF0\x9F\x98\x80"), "\xF0\x9F\x98\x80");  // valid
  EXPECT_EQ(lossy("\xC3\x28"), R + "(");
  std::string held;
  EXPECT_EQ(unicode::append_lossy_utf8(held, "ab\xE4\xB8", false), 2u);
  EXPECT_EQ(held, "ab");
}

TEST(TokenizerDecode, StreamingHoldsBackIncompleteUtf8) {
  const Tokenizer& t = qwen3();
  const json cases = load_json(tok_fixtures() / "encode_cases.json")["cases"];
  bool saw_pending = false;
  for (const json& c : cases) {
    const auto ids = c["qwen3"].get<std::vector<int32_t>>();
    StreamDecoder sd(t);
    std::string streamed;
    for (int32_t id : ids) {
      const std::string part = sd.push(id);
      EXPECT_EQ(unicode::find_invalid_utf8(part), std::string_view::npos);
      saw_pending = saw_pending || sd.pending() > 0;
      streamed += part;
    }
    streamed += sd.flush();
    EXPECT_EQ(streamed, t.decode(ids)) << c["text"].dump();
  }
  EXPECT_TRUE(saw_pending) << "the corpus should split some characters across tokens";
  // A 4-byte emoji fed one byte token at a time appears only when complete.
  StreamDecoder sd(t);
  std::string emoji = "\xF0\x9F\x98\x80";
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(sd.push(*t.token_id(byte_level_encode(emoji.substr(i, 1)))), "");
    EXPECT_EQ(sd.pending(), i + 1);
  }
  EXPECT_EQ(sd.push(*t.token_id(byte_level_encode(emoji.substr(3, 1)))), emoji);
  EXPECT_EQ(sd.push(*t.token_id(byte_level_encode("\xE4"))), "");
  EXPECT_EQ(sd.flush(), "\xEF\xBF\xBD");
}

// ---- metadata
// ---------------------------------------------------------------------------------------

TEST(TokenizerMeta, Qwen3) {
  const Tokenizer& t = qwen3();
  EXPECT_EQ(t.vocab_size(), 151669);
  EXPECT_EQ(t.eos_ids(), std::vector<int32_t>{151645});
  EXPECT_FALSE(t.bos_id().has_value());
  EXPECT_EQ(t.pad_id(), 151643);
  EXPECT_TRUE(t.special_prefix().empty());
  EXPECT_EQ(t.token_id("<think>"), 151667);
  EXPECT_FALSE(t.is_special(151667));
  EXPECT_TRUE(t.is_special(151645));
  EXPECT_FALSE(t.token_id("no such token").has_value());
  EXPECT_NE(t.describe().find("qwen2"), std::string::npos);
  EXPECT_NE(t.chat_template().find("enable_thinking"), std::string::npos);
}

TEST(TokenizerMeta, DeepSeekAddsBos) {
  const Tokenizer& t = *fixture_tokenizer("deepseek_r1");
  EXPECT_EQ(t.bos_id(), 151646);
  EXPECT_EQ(t.eos_ids(), std::vector<int32_t>{151643});
  const auto ids = t.encode("Hi", true);
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_EQ(ids[0], 151646);
}

TEST(TokenizerMeta, Llama32) {
  const Tokenizer* t = fixture_tokenizer("llama3_2");
  if (!t) GTEST_SKIP() << "../shared/tokenizers/llama3_2 not present";
  EXPECT_EQ(t->bos_id(), 128000);
  EXPECT_EQ(t->eos_ids().front(), 128009);
  EXPECT_EQ(t->special_prefix(), std::vector<int32_t>{128000});
  EXPECT_EQ(t->vocab_size(), 128256);
}

TEST(TokenizerMeta, GenerationConfigAddsEosIds) {
  toktest::TempDir dir;
  std::filesystem::copy_file(tok_fixtures() / "qwen3/tokenizer.json", dir / "tokenizer.json");
  std::filesystem::copy_file(tok_fixtures() / "qwen3/tokenizer_config.json",
                             dir / "tokenizer_config.json");
  toktest::write_text(dir / "generation_config.json", R"({"eos_token_id": [151645, 151643]})");
  const Tokenizer t = Tokenizer::load(dir.path());
  EXPECT_EQ(t.eos_ids(), (std::vector<int32_t>{151645, 151643}));
}

// ---- malformed tokenizer.json -------------------------------------------------------------------

// A minimal valid byte-level BPE tokenizer.json: the 256 byte tokens plus "ab" from one merge.
json tiny_tokenizer() {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_level_encode(std::string(1, char(b)))] = b;
  vocab["ab"] = 256;
  return json{
      {"version", "1.0"},
      {"added_tokens", json::array({{{"id", 257}, {"content", "<eos>"}, {"special", true}}})},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         json::array(
             {{{"type", "Split"},
               {"pattern", {{"Regex", split_pattern_regex(SplitPattern::Qwen2)}}},
               {"behavior", "Isolated"},
               {"invert", false}},
              {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}})}}},
      {"post_processor", nullptr},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array({"a b"})}}}};
}

template <typename E>
void expect_error(const json& tj, const std::string& needle) {
  try {
    Tokenizer::from_json(tj, json(), "t.json");
    ADD_FAILURE() << "no error; expected one mentioning '" << needle << "'";
  } catch (const E& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
}

TEST(TokenizerLoad, TinyTokenizerWorks) {
  const Tokenizer t = Tokenizer::from_json(tiny_tokenizer(), json());
  EXPECT_EQ(t.encode("abc<eos>"), (std::vector<int32_t>{256, 'c', 257}));
  EXPECT_EQ(t.decode(t.encode("abc<eos>")), "abc<eos>");
  const auto ids = t.encode("abab");
  EXPECT_EQ(ids, (std::vector<int32_t>{256, 256}));
  json pairs = tiny_tokenizer();
  pairs["model"]["merges"] = json::array({json::array({"a", "b"})});
  EXPECT_EQ(Tokenizer::from_json(pairs, json()).encode("abab"), ids);
}

TEST(TokenizerLoad, MalformedFilesGiveClearErrors) {
  json t = tiny_tokenizer();
  t.erase("model");
  expect_error<FormatError>(t, "missing \"model\"");

  t = tiny_tokenizer();
  t["model"]["type"] = "Unigram";
  expect_error<UnsupportedError>(t, "model type 'Unigram'");

  t = tiny_tokenizer();
  t["model"]["vocab"] = json::array();
  expect_error<FormatError>(t, "model.vocab must be an object");

  t = tiny_tokenizer();
  t["model"]["merges"] = json::array({"a b c"});
  expect_error<FormatError>(t, "merges[0]");

  t = tiny_tokenizer();
  t["model"]["merges"] = json::array({42});
  expect_error<FormatError>(t, "merges[0]");

  t = tiny_tokenizer();
  t["model"]["merges"] = json::array({"a zz"});
  expect_error<FormatError>(t, "token 'zz' is not in the vocab");

  // A byte-level vocabulary may lack byte tokens: like tokenizers, encoding drops those bytes.
  t = tiny_tokenizer();
  t["model"]["vocab"].erase("c");
  EXPECT_EQ(Tokenizer::from_json(t, json()).encode("abcd"), (std::vector<int32_t>{256, 'd'}));

  t = tiny_tokenizer();
  t["model"]["dropout"] = 0.1;
  expect_error<UnsupportedError>(t, "dropout");

  t = tiny_tokenizer();
  t["normalizer"] = {{"type", "Precompiled"}};
  expect_error<UnsupportedError>(t, "normalizer 'Precompiled'");

  t = tiny_tokenizer();
  t["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\s+|\\w+";
  expect_error<UnsupportedError>(t, "unsupported Split regex '\\s+|\\w+'");

  t = tiny_tokenizer();
  t["pre_tokenizer"] = {{"type", "BertPreTokenizer"}};
  expect_error<UnsupportedError>(t, "pre_tokenizer 'BertPreTokenizer'");

  t = tiny_tokenizer();
  t["decoder"] = {{"type", "WordPiece"}};
  expect_error<UnsupportedError>(t, "decoder 'WordPiece'");

  t = tiny_tokenizer();
  t["post_processor"] = {{"type", "ByteLevelPlus"}};
  expect_error<UnsupportedError>(t, "post_processor 'ByteLevelPlus'");

  t = tiny_tokenizer();
  t["added_tokens"] = json::array({{{"content", "<x>"}}});
  expect_error<FormatError>(t, "added_tokens[0]");

  // Like tokenizers, ids of added tokens follow the vocabulary whatever the "id" field says.
  t = tiny_tokenizer();
  t["added_tokens"].push_back({{"id", 5}, {"content", "<x>"}});
  t["added_tokens"].push_back({{"id", 9}, {"content", "ab"}});
  const Tokenizer tx = Tokenizer::from_json(t, json());
  EXPECT_EQ(tx.token_id("<x>"), 258);
  EXPECT_EQ(tx.token_id("ab"), 256);
  EXPECT_EQ(tx.vocab_size(), 259);

  try {
    Tokenizer::from_json(tiny_tokenizer(), json{{"eos_token", "<nope>"}}, "t.json");
    ADD_FAILURE() << "unknown eos_token accepted";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("eos_token '<nope>'"), std::string::npos);
  }
}

TEST(TokenizerLoad, FileErrors) {
  toktest::TempDir dir;
  EXPECT_THROW(Tokenizer::load(dir.path()), IoError);
  toktest::write_text(dir / "tokenizer.json", "{\"model\": ");
  try {
    Tokenizer::load(dir.path());
    ADD_FAILURE() << "truncated JSON accepted";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("invalid JSON"), std::string::npos) << e.what();
  }
  // The streaming loader falls back to the DOM for exact errors in vocab and merges.
  json t = tiny_tokenizer();
  t["model"]["vocab"]["zz"] = "x";
  toktest::write_text(dir / "tokenizer.json", t.dump());
  try {
    Tokenizer::load(dir.path());
    ADD_FAILURE() << "bad vocab accepted";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("model.vocab['zz']"), std::string::npos) << e.what();
  }
  t = tiny_tokenizer();
  t["model"]["merges"].push_back(json::array({"a", "b", "c"}));
  toktest::write_text(dir / "tokenizer.json", t.dump());
  try {
    Tokenizer::load(dir.path());
    ADD_FAILURE() << "bad merge accepted";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("model.merges[1]"), std::string::npos) << e.what();
  }
  t = tiny_tokenizer();
  t["model"]["merges"] = json::array({"a b", json::array({"ab", "a"})});
  t["model"]["vocab"]["aba"] = 300;
  toktest::write_text(dir / "tokenizer.json", t.dump());
  const Tokenizer streamed = Tokenizer::load(dir.path());
  EXPECT_EQ(streamed.encode("aba"), std::vector<int32_t>{300});
  EXPECT_EQ(streamed.encode("ab"), std::vector<int32_t>{256});
  toktest::write_text(dir / "tokenizer.json", tiny_tokenizer().dump());
  toktest::write_text(dir / "tokenizer_config.json", "[1, 2");
  EXPECT_THROW(Tokenizer::load(dir.path()), FormatError);
}

// ---- unicode tables
// ---------------------------------------------------------------------------------

TEST(Unicode, Classes) {
  using namespace unicode;
  EXPECT_TRUE(char_flags('a') & kLetter);
  EXPECT_TRUE(char_flags(0x4E2D) & kLetter);  // 中
  EXPECT_TRUE(char_flags(0x0663) & kNumber);  // Arabic-Indic three
  EXPECT_TRUE(char_flags(0x00B2) & kNumber);  // superscript two (No)
  EXPECT_TRUE(char_flags(0x216B) & kNumber);  // Roman numeral twelve (Nl)
  EXPECT_TRUE(char_flags(0x3000) & kSpace);
  EXPECT_TRUE(char_flags(0x0085) & kSpace);
  EXPECT_FALSE(char_flags(0x200B) & kSpace);  // zero width space is not White_Space
  EXPECT_TRUE(char_flags(0x001C) & kPythonSpace);
  EXPECT_FALSE(char_flags(0x001C) & kSpace);
  EXPECT_TRUE(char_flags('_') & kWord);
  EXPECT_TRUE(char_flags(0x0301) & kWord);
  EXPECT_FALSE(char_flags('!') & kWord);
}

}  // namespace
}  // namespace resp
