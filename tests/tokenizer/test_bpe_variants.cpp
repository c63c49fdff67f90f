// Byte-level BPE variants against Hugging Face tokenizers (tests/fixtures/tokenizer/
// bpe_variants.json, made by tools/make_bpe_variant_fixtures.py): SmolLM2's tokenizer, whose
// vocabulary lacks 21 byte tokens; variants of it with other pre-tokenizers, normalizers, model
// options and post-processors; small synthetic tokenizers for unk_token, fuse_unk, byte_fallback,
// continuing_subword_prefix, end_of_word_suffix and repeated merges. Also the pre-tokenizer steps
// on their own, the limits on ids, and the components that are refused.
#include <gtest/gtest.h>

#include "core/error.h"
#include "tok_fixtures.h"
#include "tokenizer/bpe.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace resp {
namespace {

using nlohmann::json;
using toktest::load_json;
using toktest::tok_fixtures;
using Ids = std::vector<int32_t>;

const json& variants_doc() {
  static const json doc = load_json(tok_fixtures() / "bpe_variants.json");
  return doc;
}

const json& smollm2_json() {
  static const json doc = load_json(tok_fixtures() / "smollm2/tokenizer.json");
  return doc;
}

// The tokenizer.json of a variant: its own, or SmolLM2's with the patch the generator applied.
json variant_json(const json& v) {
  if (v.contains("tokenizer")) return v["tokenizer"];
  json tj = smollm2_json();
  for (const auto& [key, val] : v["patch"].items()) {
    if (key == "model") {
      for (const auto& [mk, mv] : val.items()) tj["model"][mk] = mv;
    } else if (key == "merges_as_strings") {
      json merges = json::array();
      for (const json& p : tj["model"]["merges"])
        merges.push_back(p[0].get<std::string>() + " " + p[1].get<std::string>());
      tj["model"]["merges"] = std::move(merges);
    } else if (key == "added_tokens_extra") {
      for (const json& a : val) tj["added_tokens"].push_back(a);
    } else {
      tj[key] = val;
    }
  }
  return tj;
}

TEST(BpeVariants, MatchHuggingFace) {
  const json& doc = variants_doc();
  std::vector<Ids> smollm2_ids;
  size_t variants = 0, checked = 0;
  for (const json& v : doc["variants"]) {
    const std::string name = v["name"];
    const Tokenizer tok = Tokenizer::from_json(variant_json(v), json(), name);
    const json& texts = doc[v["texts"].get<std::string>()];
    std::vector<Ids> want;
    if (v.contains("ids")) {
      want = v["ids"].get<std::vector<Ids>>();
    } else {
      want = smollm2_ids;
      for (const auto& [k, ids] : v["ids_diff"].items()) want.at(std::stoul(k)) = ids.get<Ids>();
    }
    if (name == "smollm2") smollm2_ids = want;
    ASSERT_EQ(want.size(), texts.size()) << name;
    const json& decoded = v["decoded_diff"];
    int failures = 0;
    for (size_t i = 0; i < texts.size(); ++i) {
      const std::string text = texts[i];
      const Ids got = tok.encode(text);
      const std::string key = std::to_string(i);
      const std::string want_text = decoded.contains(key) ? decoded[key].get<std::string>() : text;
      const std::string got_text = tok.decode(want[i]);
      bool ok = got == want[i] && got_text == want_text;
      if (v.contains("special_prefix")) {
        Ids full = v["special_prefix"].get<Ids>();
        full.insert(full.end(), want[i].begin(), want[i].end());
        for (int32_t id : v["special_suffix"].get<Ids>()) full.push_back(id);
        ok = ok && tok.encode(text, true) == full;
      }
      if (!ok && ++failures <= 3)
        ADD_FAILURE() << name << ": text " << i << " " << json(text).dump() << "\n  ids  "
                      << json(got).dump() << "\n  want " << json(want[i]).dump() << "\n  decoded "
                      << json(got_text).dump() << " want " << json(want_text).dump();
      ++checked;
    }
    EXPECT_EQ(failures, 0) << name;
    ++variants;
  }
  EXPECT_GE(variants, 40u);
  std::cout << "[ variants ] " << variants << " tokenizers, " << checked << " texts\n";
}

TEST(BpeVariants, SmolLM2LoadsAndDropsMissingBytes) {
  const Tokenizer tok = Tokenizer::load(tok_fixtures() / "smollm2");
  // tokenizers: 'ctrl\x04char' -> ['ctrl', 'char'], the byte without a token is dropped.
  EXPECT_EQ(tok.encode("ctrl\x04"
                       "char"),
            (Ids{39673, 9061}));
  EXPECT_EQ(tok.decode(Ids{39673, 9061}), "ctrlchar");
  EXPECT_TRUE(tok.encode("\x04\x06\x13").empty());
  EXPECT_NE(tok.describe().find("21 byte tokens missing"), std::string::npos) << tok.describe();
  EXPECT_EQ(tok.vocab_size(), 49152);
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_ids(), Ids{2});
  EXPECT_TRUE(tok.is_special(0));
  // An emoji (lead byte 0xF0 has a token) round-trips; a plane-4 character loses its lead byte
  // 0xF1, and each continuation byte left decodes to U+FFFD, as in tokenizers.
  const std::string emoji = "hi \xF0\x9F\x98\x80";
  EXPECT_EQ(tok.decode(tok.encode(emoji)), emoji);
  EXPECT_EQ(tok.decode(tok.encode("\xF1\x80\x80\x80")), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  // Streaming agrees with decode.
  StreamDecoder sd(tok);
  std::string streamed;
  const Ids ids = tok.encode("tags \xF3\xA0\x80\x81 x \xF0\x9F\xA4\x97 done");
  for (int32_t id : ids) streamed += sd.push(id);
  streamed += sd.flush();
  EXPECT_EQ(streamed, tok.decode(ids));
}

TEST(BpeVariants, UnkTokenOutsideTheVocabularyFailsOnlyWhenNeeded) {
  const json& fx = variants_doc()["unk_missing"];
  const Tokenizer tok = Tokenizer::from_json(fx["tokenizer"], json(), "unk.json");
  EXPECT_EQ(tok.encode(fx["ok_text"].get<std::string>()), fx["ok_ids"].get<Ids>());
  try {
    tok.encode(fx["bad_text"].get<std::string>());
    ADD_FAILURE() << "no error; tokenizers says: " << fx["hf_error"];
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("unk.json: model.unk_token '<nope>'"), std::string::npos)
        << e.what();
  }
}

// ---- pre-tokenizer steps ------------------------------------------------------------------------

std::vector<std::string> run_chain(std::vector<PreTokStep> steps, const std::string& text) {
  return PreTokenizerChain(std::move(steps)).split(text);
}

PreTokStep step(PreTokStep::Kind kind, SplitBehavior b = SplitBehavior::Isolated) {
  PreTokStep s;
  s.kind = kind;
  s.behavior = b;
  return s;
}

TEST(PreTokenizerChain, BehavioursMatchTokenizers) {
  // Expected pieces from tokenizers 0.23.3: pre_tokenizers.Punctuation(behavior).
  using V = std::vector<std::string>;
  using K = PreTokStep::Kind;
  const std::string text = "a!!b,c.$d+ (x)\xC2\xBFy";  // ¿
  EXPECT_EQ(run_chain({step(K::Punctuation, SplitBehavior::Removed)}, text),
            (V{"a", "b", "c", "d", " ", "x", "y"}));
  EXPECT_EQ(run_chain({step(K::Punctuation, SplitBehavior::MergedWithPrevious)}, text),
            (V{"a!", "!", "b,", "c.", "$", "d+", " (", "x)", "\xC2\xBF", "y"}));
  EXPECT_EQ(run_chain({step(K::Punctuation, SplitBehavior::MergedWithNext)}, text),
            (V{"a", "!", "!b", ",c", ".", "$d", "+ ", "(x", ")", "\xC2\xBFy"}));
  EXPECT_EQ(run_chain({step(K::Punctuation, SplitBehavior::Contiguous)}, text),
            (V{"a", "!!", "b", ",", "c", ".$", "d", "+", " ", "(", "x", ")\xC2\xBF", "y"}));
  // Digits: any \p{N}, not only ASCII.
  EXPECT_EQ(run_chain({step(K::Digits, SplitBehavior::Contiguous)}, "a12\xD9\xA3x"),
            (V{"a", "12\xD9\xA3", "x"}));
  // Whitespace: \w+|[^\w\s]+, whitespace (here U+00A0) dropped.
  EXPECT_EQ(run_chain({step(K::Whitespace)}, "hi  there, x_y!!  \xC3\xB1\xC2\xA0z"),
            (V{"hi", "there", ",", "x_y", "!!", "\xC3\xB1", "z"}));
  EXPECT_EQ(run_chain({step(K::WhitespaceSplit)}, "hi  there, x\xE2\x80\x8By"),
            (V{"hi", "there,", "x\xE2\x80\x8By"}));
  // add_prefix_space applies to every piece the steps before produced.
  EXPECT_EQ(run_chain({step(K::Digits), step(K::PrefixSpace), step(K::ByteLevel)}, "ab12"),
            (V{" ab", " 1", " 2"}));
  // After the byte-level mapping byte 0xB2 stands for U+00B2 (a digit): "β" = CE B2 splits.
  EXPECT_EQ(run_chain({step(K::ByteLevel), step(K::Digits)}, "\xCE\xB2"), (V{"\xCE", "\xB2"}));
  EXPECT_TRUE(run_chain({step(K::Digits)}, "").empty());
  std::vector<PreTokStep> bad = {step(K::ByteLevel), step(K::Regex)};
  EXPECT_THROW(PreTokenizerChain{bad}, UsageError);
}

TEST(Unicode, LowercaseAndForms) {
  std::string out;
  // U+0130 -> "i" + U+0307; capital sigma -> small sigma everywhere (no final-sigma rule).
  ASSERT_TRUE(unicode::lowercase("\xC4\xB0\xCE\xA3\xCE\x91\xCE\xA3 AB", out));
  EXPECT_EQ(out, "i\xCC\x87\xCF\x83\xCE\xB1\xCF\x83 ab");
  EXPECT_FALSE(unicode::lowercase("already lower \xC3\xA9", out));
  ASSERT_TRUE(unicode::normalize(unicode::NormalForm::NFKC, "\xEF\xAC\x81", out));  // ﬁ
  EXPECT_EQ(out, "fi");
  ASSERT_TRUE(unicode::normalize(unicode::NormalForm::NFD, "\xC3\xA9", out));  // é
  EXPECT_EQ(out, "e\xCC\x81");
  EXPECT_FALSE(unicode::normalize(unicode::NormalForm::NFKD, "plain", out));
  EXPECT_TRUE(unicode::char_flags('$') & unicode::kPunct);    // ASCII punctuation
  EXPECT_TRUE(unicode::char_flags(0xBF) & unicode::kPunct);   // ¿ (Po)
  EXPECT_FALSE(unicode::char_flags(0xAC) & unicode::kPunct);  // ¬ (Sm, not ASCII)
  EXPECT_FALSE(unicode::char_flags('a') & unicode::kPunct);
}

// ---- limits and refusals ------------------------------------------------------------------------

json small_tokenizer() {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_level_encode(std::string(1, char(b)))] = b;
  vocab["ab"] = 256;
  return json{{"version", "1.0"},
              {"added_tokens", json::array()},
              {"normalizer", nullptr},
              {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}}},
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

TEST(BpeVariants, HugeIdsAreRefused) {
  for (const int64_t id : {int64_t{2147483647}, int64_t{2147483646}, int64_t{1} << 21}) {
    json t = small_tokenizer();
    t["model"]["vocab"]["zz"] = id;
    expect_error<FormatError>(t, "t.json: model.vocab['zz'] has id " + std::to_string(id));
    // The streaming loader checks the same.
    toktest::TempDir dir;
    toktest::write_text(dir / "tokenizer.json", t.dump());
    EXPECT_THROW(Tokenizer::load(dir.path()), FormatError);
  }
  json ok = small_tokenizer();
  ok["model"]["vocab"]["zz"] = 1000;  // gaps are fine
  EXPECT_EQ(Tokenizer::from_json(ok, json()).vocab_size(), 1001);

  json t = small_tokenizer();
  t["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", json::array({{{"SpecialToken", {{"id", "<s>"}}}}, {{"Sequence", {{"id", "A"}}}}})},
      {"special_tokens", {{"<s>", {{"ids", json::array({2147483647})}}}}}};
  expect_error<FormatError>(t, "post_processor adds the id 2147483647");
  t["post_processor"] = {{"type", "RobertaProcessing"},
                         {"cls", json::array({"<s>", 70000})},
                         {"sep", json::array({"</s>", 1})}};
  expect_error<FormatError>(t, "post_processor adds the id 70000");
}

TEST(BpeVariants, UnsupportedComponentsAreNamed) {
  json t = small_tokenizer();
  t["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "_"}};
  expect_error<UnsupportedError>(t, "t.json: unsupported pre_tokenizer 'Metaspace'");

  t = small_tokenizer();
  t["pre_tokenizer"] = {{"type", "Whitespace"}};
  expect_error<UnsupportedError>(t, "without a ByteLevel step");

  t = small_tokenizer();
  t["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       json::array({{{"type", "ByteLevel"}},
                    {{"type", "Split"},
                     {"pattern", {{"Regex", split_pattern_regex(SplitPattern::Gpt2)}}},
                     {"behavior", "Isolated"},
                     {"invert", false}}})}};
  expect_error<UnsupportedError>(t, "Split regex after the ByteLevel");

  t = small_tokenizer();
  t["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers", json::array({{{"type", "ByteLevel"}}, {{"type", "ByteLevel"}}})}};
  expect_error<UnsupportedError>(t, "two ByteLevel");

  t = small_tokenizer();
  t["pre_tokenizer"] = {{"type", "Split"},
                        {"pattern", {{"String", " "}}},
                        {"behavior", "Sideways"},
                        {"invert", false}};
  expect_error<FormatError>(t, "unknown behavior");

  t = small_tokenizer();
  t["normalizer"] = {{"type", "Replace"}, {"pattern", {{"Regex", "\\s+"}}}, {"content", " "}};
  expect_error<UnsupportedError>(t, "normalizer 'Replace' with the Regex pattern '\\s+'");

  t = small_tokenizer();
  t["normalizer"] = {{"type", "BertNormalizer"}};
  expect_error<UnsupportedError>(t, "unsupported normalizer 'BertNormalizer'");

  t = small_tokenizer();
  t["model"]["continuing_subword_prefix"] = "##";
  t["model"]["merges"] = json::array({"a #"});
  expect_error<FormatError>(t, "shorter than continuing_subword_prefix");
}

}  // namespace
}  // namespace resp
