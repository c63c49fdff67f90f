#!/usr/bin/env python3
"""Generates the tokenizer test fixtures in tests/fixtures/tokenizer/ from Hugging Face's own code.

Reference implementation: the `tokenizers` package (encode, pre-tokenization) and `transformers`'
apply_chat_template (the real Jinja chat templates from tokenizer_config.json), both from PyPI:

    pip install tokenizers transformers
    python3 tools/make_tokenizer_fixtures.py [--shared ../shared] [--out tests/fixtures/tokenizer]

Needs ../shared/tokenizers/{qwen3,qwen2_5,llama3_2} and ../shared/tokenizers/vectors. The output is
deterministic. What it writes is described in tests/fixtures/tokenizer/README.md.
"""

import argparse
import json
import random
import shutil
import tempfile
import unicodedata
from pathlib import Path

import tokenizers
import transformers
from tokenizers import Regex, Tokenizer, pre_tokenizers
from transformers import AutoTokenizer

ROOT = Path(__file__).resolve().parent.parent

QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
               r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_REGEX = QWEN2_REGEX.replace(r"\p{N}|", r"\p{N}{1,3}|", 1)
GPT2_REGEX = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"

# ---- DeepSeek-R1-Distill-Qwen (MIT): its tokenizer is Qwen2.5's vocabulary and merges with these
# added tokens, a BOS post-processor and this tokenizer_config.json (deepseek-ai/
# DeepSeek-R1-Distill-Qwen-1.5B, current revision: the generation prompt opens <think>).
DS_ADDED = [
    (151643, "<｜end▁of▁sentence｜>", True), (151644, "<｜User｜>", False),
    (151645, "<｜Assistant｜>", False), (151646, "<｜begin▁of▁sentence｜>", True),
    (151647, "<|EOT|>", False), (151648, "<think>", False), (151649, "</think>", False),
    (151650, "<|quad_start|>", True), (151651, "<|quad_end|>", True),
    (151652, "<|vision_start|>", True), (151653, "<|vision_end|>", True),
    (151654, "<|vision_pad|>", True), (151655, "<|image_pad|>", True),
    (151656, "<|video_pad|>", True), (151657, "<tool_call>", False),
    (151658, "</tool_call>", False), (151659, "<|fim_prefix|>", False),
    (151660, "<|fim_middle|>", False), (151661, "<|fim_suffix|>", False),
    (151662, "<|fim_pad|>", False), (151663, "<|repo_name|>", False),
    (151664, "<|file_sep|>", False),
]
DS_TEMPLATE = (
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
    "{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='') %}"
    "{%- for message in messages %}{%- if message['role'] == 'system' %}"
    "{% set ns.system_prompt = message['content'] %}{%- endif %}{%- endfor %}"
    "{{bos_token}}{{ns.system_prompt}}{%- for message in messages %}"
    "{%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}"
    "{{'<｜User｜>' + message['content']}}{%- endif %}"
    "{%- if message['role'] == 'assistant' and message['content'] is none %}"
    "{%- set ns.is_tool = false -%}{%- for tool in message['tool_calls']%}{%- if not ns.is_first %}"
    "{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + "
    "tool['function']['name'] + '\\n' + '```json' + '\\n' + tool['function']['arguments'] + '\\n' + "
    "'```' + '<｜tool▁call▁end｜>'}}{%- set ns.is_first = true -%}{%- else %}"
    "{{'\\n' + '<｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + "
    "'\\n' + '```json' + '\\n' + tool['function']['arguments'] + '\\n' + '```' + "
    "'<｜tool▁call▁end｜>'}}{{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}{%- endif %}{%- endfor %}"
    "{%- endif %}{%- if message['role'] == 'assistant' and message['content'] is not none %}"
    "{%- if ns.is_tool %}{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}"
    "{%- set ns.is_tool = false -%}{%- else %}{% set content = message['content'] %}"
    "{% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}"
    "{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endif %}"
    "{%- if message['role'] == 'tool' %}{%- set ns.is_tool = true -%}{%- if ns.is_output_first %}"
    "{{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + message['content'] + "
    "'<｜tool▁output▁end｜>'}}{%- set ns.is_output_first = false %}{%- else %}"
    "{{'\\n<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- endif %}"
    "{%- endif %}{%- endfor -%}{% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}{% endif %}"
    "{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜><think>\\n'}}{% endif %}")


def ds_config():
    return {
        "add_bos_token": True,
        "add_eos_token": False,
        "added_tokens_decoder": {
            str(i): {"content": c, "lstrip": False, "normalized": False, "rstrip": False,
                     "single_word": False, "special": s}
            for i, c, s in DS_ADDED
        },
        "bos_token": "<｜begin▁of▁sentence｜>",
        "chat_template": DS_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<｜end▁of▁sentence｜>",
        "legacy": True,
        "model_max_length": 16384,
        "pad_token": "<｜end▁of▁sentence｜>",
        "sp_model_kwargs": {},
        "tokenizer_class": "LlamaTokenizerFast",
        "unk_token": None,
        "use_default_system_prompt": False,
    }


def ds_patch():
    bos = "<｜begin▁of▁sentence｜>"
    return {
        "added_tokens": [
            {"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": s}
            for i, c, s in DS_ADDED
        ],
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": bos, "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": bos, "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": bos, "type_id": 1}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {bos: {"id": bos, "ids": [151646], "tokens": [bos]}},
        },
    }


# ---- the Unicode-heavy corpus -----------------------------------------------------------------
CORPUS = [
    "Hello world",
    " Hello World!  How's it going? I'm fine, we'll see; they've gone, you'd know.",
    "SHOUTING: IT'S, WE'LL, THEY'VE, I'M, YOU'D, 'S 'T 'RE 'VE 'M 'LL 'D 'ſ x'ſt",
    "Curly ’quotes’ and \"straight\" ones, «guillemets», „low“ and ‹single›.",
    "中文测试：你好，世界！这是一个分词器的往返测试。",
    "日本語のテキスト、カタカナとひらがな。東京は２０２４年に…",
    "한국어 텍스트입니다. 조합형: \u1100\u1161\u11a8 and 가각",
    "Emoji: 😀😃😄 👍🏽 👨‍👩‍👧‍👦 🇳🇴🇯🇵 ❤️ 🏳️‍🌈 1️⃣",
    "Combining: e\u0301 a\u0308 o\u0302\u0323 n\u0303 A\u030a \u212b \u2126 \ufb01 \uf900",
    "Vietnamese: Tiếng Việt có dấu: ệ ở ữ ặ; Devanagari: नमस्ते दुनिया; Thai: สวัสดีชาวโลก",
    "Arabic: مرحبا بالعالم ١٢٣٤٥; Hebrew: שלום עולם",
    "Whitespace:\ttab\u00a0nbsp\u3000ideographic\u2009thin\u200bzwsp  double   triple",
    "Lines\r\nCRLF\rCR\n\nblank\n\n\nmore\n \n  \n\t\n end  ",
    "   leading spaces and trailing spaces   ",
    "\n\n\n",
    "Digits: 0 12 345 6789 1234567890 3.14159 1,000,000 ２０２４ ¹²³ Ⅻ ½ ٣٤",
    "Code: for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; }  // dot",
    "def f(x):\n    return {'a': [1, 2, 3], \"b\": None}  # comment\n\n\nclass A:\n\tpass\n",
    "#include <vector>\nint main() {\n  std::vector<int> v{1,2,3};\n  return v.size() > 2 ? 0 : 1;\n}\n",
    '{"key": "value", "list": [1, 2.5e-3, true, null], "nested": {"a": "\\u00e9"}}',
    "Punctuation runs: ...!!!???---===+++***///\\\\|||~~~``` ''''\"\"\" ((()))[[]]{{}}",
    "Math: ∀x∈ℝ, ∃y: x² + y² ≤ r²; ∫₀^∞ e^{-x} dx = 1; α+β=γ",
    "Control: \x01\x02\x7f \u0085 \u2028 \u2029 \ufeff bom \u00ad soft",
    "Mixed: abc123def 456ghi 7j8k9 x_y_z camelCase snake_case kebab-case",
    "URL: https://example.com/path?q=1&r=two#frag and email a.b+c@d-e.org",
    "Long CJK run: " + "天地玄黄宇宙洪荒日月盈昃辰宿列张寒来暑往秋收冬藏" * 6,
    "Repeated: " + "aaaa" * 40 + " " + "ab" * 50,
    "<|im_start|>user\nHi<|im_end|>\n<think>\n\n</think>\n\n<|endoftext|>",
    "Tokens as text: <|im_start <|im_end|x <think <think>> </think>< |endoftext|>",
    "",
    " ",
    "ﬁnancial ﬂow ﬀ Ⅸ ㍿ ㌀ ℃ №",
    "Zalgo: Z̵̢̛a̷͈̿l̶̰̈́g̸̛̟o̴̝͐",
    "Tabs\t\tand\t spaces \t mixed\t\n\t indented",
]

# Character pools for the random strings.
POOLS = [
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "0123456789",
    " ", " ", " ", "  ", "\t", "\n", "\r\n", "\r", "\u00a0", "\u3000", "\u2009", "\u0085", "\u000b",
    "'", "'s", "'S", "'ll", "'LL", "'ve", "'re", "'d", "'m", "'t", "'ſ", "’",
    ".,;:!?-_()[]{}<>/\\|@#$%^&*+=~`\"",
    "中文字词测试你好世界", "日本語カタカナひらがな", "한국어텍스트",
    "😀👍🏽👨‍👩‍👧🇯🇵❤️", "é\u0301\u0308\u0323\u0302", "ñüöäß", "ΑΒΓαβγ", "АБВабв",
    "١٢٣٤", "２０２４", "¹²³½Ⅻ", "ſ", "\u200b\u200d\ufeff", "ﬁﬂ",
]


def random_strings(n, seed):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 24)):
            pool = rng.choice(POOLS)
            k = rng.randint(1, 4)
            parts.append("".join(rng.choice(pool) if len(pool) > 2 and rng.random() < 0.7 else pool
                                 for _ in range(k)))
        out.append("".join(parts))
    return out


def write_json(path, obj):
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def pretok_cases(texts):
    out = {}
    for name, rx in (("qwen2", QWEN2_REGEX), ("llama3", LLAMA3_REGEX), ("gpt2", GPT2_REGEX)):
        split = pre_tokenizers.Split(Regex(rx), behavior="isolated", invert=False)
        cases = []
        for t in texts:
            pieces = [p for p, _ in split.pre_tokenize_str(t)]
            assert "".join(pieces) == t, (name, t)
            cases.append({"text": t, "pieces": pieces})
        out[name] = cases
    return out


def chat_cases(shared, ds_dir):
    toks = {
        "qwen3": AutoTokenizer.from_pretrained(str(shared / "qwen3")),
        "qwen2_5": AutoTokenizer.from_pretrained(str(shared / "qwen2_5")),
        "llama3_2": AutoTokenizer.from_pretrained(str(shared / "llama3_2")),
        "deepseek_r1": AutoTokenizer.from_pretrained(str(ds_dir)),
    }
    fmt_of = {"qwen3": "qwen3", "qwen2_5": "qwen2.5", "llama3_2": "llama3",
              "deepseek_r1": "deepseek-r1"}
    sys_msg = {"role": "system", "content": "You are a careful math tutor."}
    q1 = {"role": "user", "content": "What is 2+2?"}
    a1_think = {"role": "assistant",
                "content": "<think>\nAdd two and two.\n</think>\n\nThe answer is 4."}
    a1_plain = {"role": "assistant", "content": "The answer is 4."}
    q2 = {"role": "user", "content": "And 3*7? Explain   briefly.  "}
    a2 = {"role": "assistant", "content": "21, since 3 sevens make 21."}
    q3 = {"role": "user", "content": "  Now: ∫₀¹ x dx = ?  中文 😀 \n"}
    tool = {"role": "tool", "content": "{\"result\": 42}"}
    tool2 = {"role": "tool", "content": "line1\nline2 \"quoted\""}
    convs = {
        "single": [q1],
        "system": [sys_msg, q1],
        "fewshot": [sys_msg, q1, a1_plain, q2, a2, q3],
        "history_think": [q1, a1_think, q2],
        "last_assistant_think": [q1, a1_think],
        "multi_assistant_think": [q1, a1_think, q2,
                                  {"role": "assistant",
                                   "content": "<think>first</think>middle<think>\n\nsecond\n\n</think>\n\nfinal"},
                                  q3],
        "tools": [sys_msg, q1, {"role": "assistant", "content": "Calling the tool."}, tool, tool2],
        "unicode_whitespace": [{"role": "system", "content": "  \u3000Be brief.\n"}, q3],
    }
    thinking_modes = {"qwen3": ["default", "on", "off"], "qwen2_5": ["default", "off"],
                      "llama3_2": ["default", "off"], "deepseek_r1": ["default", "on"]}
    cases = []
    for model, tok in toks.items():
        for conv_name, msgs in convs.items():
            for gen in (True, False):
                if conv_name.startswith("last_") and gen:
                    continue
                for thinking in thinking_modes[model]:
                    kwargs = {}
                    if model == "qwen3" and thinking != "default":
                        kwargs["enable_thinking"] = thinking == "on"
                    if model == "llama3_2":
                        kwargs["date_string"] = "26 Jul 2024"
                    text = tok.apply_chat_template(msgs, tokenize=False,
                                                   add_generation_prompt=gen, **kwargs)
                    ids = tok.encode(text, add_special_tokens=False)
                    direct = tok.apply_chat_template(msgs, tokenize=True,
                                                     add_generation_prompt=gen, **kwargs)
                    if isinstance(direct, dict) or hasattr(direct, "keys"):
                        direct = direct["input_ids"]
                    assert list(direct) == ids, (model, conv_name)
                    cases.append({
                        "name": f"{model}/{conv_name}/gen={int(gen)}/thinking={thinking}",
                        "model": model, "format": fmt_of[model], "messages": msgs,
                        "add_generation_prompt": gen, "thinking": thinking,
                        "date_string": "26 Jul 2024", "text": text, "ids": ids,
                    })
    # Llama-3.2's template is not copied (its licence); the test reads it from ../shared.
    templates = {m: t.chat_template for m, t in toks.items() if m != "llama3_2"}
    return cases, templates


def added_cases(qwen3_json):
    """Extra added tokens with lstrip / rstrip / single_word / normalized, on the Qwen3 tokenizer."""
    extra = [
        {"id": 151669, "content": "<LS>", "special": True, "lstrip": True, "rstrip": False,
         "single_word": False, "normalized": False},
        {"id": 151670, "content": "<RS>", "special": True, "lstrip": False, "rstrip": True,
         "single_word": False, "normalized": False},
        {"id": 151671, "content": "<BOTH>", "special": False, "lstrip": True, "rstrip": True,
         "single_word": False, "normalized": False},
        {"id": 151672, "content": "word", "special": False, "lstrip": False, "rstrip": False,
         "single_word": True, "normalized": False},
        {"id": 151673, "content": "café", "special": False, "lstrip": False, "rstrip": False,
         "single_word": False, "normalized": True},
        {"id": 151674, "content": "<|im_start|>x", "special": False, "lstrip": False,
         "rstrip": False, "single_word": False, "normalized": False},
    ]
    tj = json.loads(qwen3_json)
    tj["added_tokens"] = tj["added_tokens"] + extra
    tok = Tokenizer.from_str(json.dumps(tj))
    texts = [
        "a <LS>b", "a   \t<LS>  b", "<LS>", "x<RS>   y", "x <RS>\n\ny", "p  <BOTH>  q",
        "one word here", "words", "sword", "word!", "(word)", "_word", "word_", "éword",
        "word2", "a word", "cafe\u0301 café cafe", "<|im_start|>xy <|im_start|>user",
        "<LS><RS><BOTH>", "  <LS>", "<RS>  ", "<|im_end|> <|endoftext|><think>",
    ]
    cases = []
    for t in texts:
        ids = tok.encode(t, add_special_tokens=False).ids
        tok.encode_special_tokens = True
        ids_split = tok.encode(t, add_special_tokens=False).ids
        tok.encode_special_tokens = False
        cases.append({"text": t, "ids": ids, "ids_split_special": ids_split})
    return {"extra_added_tokens": extra, "cases": cases}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", default=str(ROOT.parent / "shared"))
    ap.add_argument("--out", default=str(ROOT / "tests/fixtures/tokenizer"))
    args = ap.parse_args()
    shared = Path(args.shared) / "tokenizers"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    # Qwen3 tokenizer (Apache-2.0), copied verbatim so the core tests always run.
    (out / "qwen3").mkdir(exist_ok=True)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(shared / "qwen3" / f, out / "qwen3" / f)

    # Test vectors (MIT, ggml authors).
    (out / "vectors").mkdir(exist_ok=True)
    for f in ("LICENSE", "ggml-vocab-qwen2.gguf.inp", "ggml-vocab-qwen2.gguf.out",
              "ggml-vocab-deepseek-r1-qwen.gguf.inp", "ggml-vocab-deepseek-r1-qwen.gguf.out",
              "ggml-vocab-llama-bpe.gguf.inp", "ggml-vocab-llama-bpe.gguf.out"):
        shutil.copyfile(shared / "vectors" / f, out / "vectors" / f)

    # DeepSeek-R1-Distill-Qwen: config + the patch that turns the Qwen tokenizer.json into its own.
    (out / "deepseek_r1").mkdir(exist_ok=True)
    write_json(out / "deepseek_r1" / "tokenizer_config.json", ds_config())
    write_json(out / "deepseek_r1" / "tokenizer_patch.json", ds_patch())
    qwen3_json = (shared / "qwen3" / "tokenizer.json").read_text(encoding="utf-8")

    with tempfile.TemporaryDirectory() as tmp:
        ds_dir = Path(tmp)
        tj = json.loads(qwen3_json)
        tj.update(ds_patch())
        (ds_dir / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False),
                                              encoding="utf-8")
        write_json(ds_dir / "tokenizer_config.json", ds_config())
        chats, templates = chat_cases(shared, ds_dir)
    write_json(out / "chat_cases.json", {
        "generator": f"transformers {transformers.__version__} apply_chat_template "
                     f"(tokenizers {tokenizers.__version__})",
        "cases": chats,
    })
    write_json(out / "chat_templates.json", templates)

    # Encode cases: the corpus plus random strings, with the ids of each tokenizer.
    rnd = random_strings(300, seed=1234)
    texts = CORPUS + rnd
    hf = {name: Tokenizer.from_file(str(shared / name / "tokenizer.json"))
          for name in ("qwen3", "qwen2_5", "llama3_2")}
    cases = []
    for t in texts:
        cases.append({
            "text": t,
            "nfc": unicodedata.normalize("NFC", t),
            "qwen3": hf["qwen3"].encode(t, add_special_tokens=False).ids,
            "qwen2_5": hf["qwen2_5"].encode(t, add_special_tokens=False).ids,
            "llama3_2": hf["llama3_2"].encode(t, add_special_tokens=False).ids,
            "llama3_2_special": hf["llama3_2"].encode(t, add_special_tokens=True).ids,
        })
    write_json(out / "encode_cases.json", {
        "generator": f"tokenizers {tokenizers.__version__} Tokenizer.encode",
        "num_corpus": len(CORPUS), "cases": cases})
    write_json(out / "pretok_cases.json", pretok_cases(texts))
    write_json(out / "added_cases.json", added_cases(qwen3_json))
    print(f"wrote fixtures to {out}: {len(chats)} chat cases, {len(cases)} encode cases")


if __name__ == "__main__":
    main()
