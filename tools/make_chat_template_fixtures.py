#!/usr/bin/env python3
"""Generates tests/fixtures/tokenizer/jinja_cases.json: real chat templates rendered by
transformers' apply_chat_template (jinja2) over a corpus of conversations, the reference for the
C++ Jinja interpreter (src/tokenizer/jinja_*.cpp) and ChatFormat.

    pip install transformers tokenizers jinja2
    python3 tools/make_chat_template_fixtures.py [--shared ../shared] [--smollm2 DIR]

Templates: Qwen3, Qwen2.5 and Llama-3.2 from ../shared/tokenizers, DeepSeek-R1-Distill-Qwen from
tests/fixtures/tokenizer/deepseek_r1, SmolLM2-135M-Instruct from a Hugging Face folder
(chat_template.jinja or tokenizer_config.json; default /work/smollm2/hf). Every template's text is
copied into the fixture except Llama-3.2's (Llama 3.2 Community License): tests read that one from
../shared and skip it when absent. Each case renders with date_string="26 Jul 2024" (what resp
passes) and thinking default (no enable_thinking), on or off. The output is deterministic.
"""

import argparse
import importlib.util
import json
import tempfile
from pathlib import Path

import jinja2
import transformers
from transformers import AutoTokenizer

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures" / "tokenizer"


def load_tokenizer_fixture_helpers():
    spec = importlib.util.spec_from_file_location("mtf", ROOT / "tools" / "make_tokenizer_fixtures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def deepseek_dir(tmp):
    """DeepSeek-R1-Distill-Qwen's tokenizer: the Qwen vocabulary + its added tokens and config."""
    mtf = load_tokenizer_fixture_helpers()
    tj = json.loads((FIX / "qwen3" / "tokenizer.json").read_text())
    tj.update(mtf.ds_patch())
    d = Path(tmp) / "deepseek_r1"
    d.mkdir()
    (d / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False))
    (d / "tokenizer_config.json").write_text(json.dumps(mtf.ds_config(), ensure_ascii=False))
    return d


SYS = {"role": "system", "content": "You are a careful math tutor."}
Q1 = {"role": "user", "content": "What is 2+2?"}
A1 = {"role": "assistant", "content": "The answer is 4."}
A1_THINK = {"role": "assistant", "content": "<think>\nAdd two and two.\n</think>\n\nThe answer is 4."}
Q2 = {"role": "user", "content": "And 3*7? Explain   briefly.  "}
A2 = {"role": "assistant", "content": "21, since 3 sevens make 21."}
Q3 = {"role": "user", "content": "  Now: ∫₀¹ x dx = ?  中文 😀 \n"}
FEWSHOT = [
    {"role": "user", "content": "Q: There are 15 trees in the grove. Grove workers will plant trees "
                                "today. After they are done, there will be 21 trees. How many trees "
                                "did the grove workers plant today?\nA:"},
    {"role": "assistant", "content": "There are 15 trees originally. Then there were 21 trees after "
                                     "some more were planted. So there must have been 21 - 15 = 6. "
                                     "The answer is 6."},
    {"role": "user", "content": "Q: If there are 3 cars in the parking lot and 2 more cars arrive, "
                                "how many cars are in the parking lot?\nA:"},
    {"role": "assistant", "content": "There are originally 3 cars. 2 more cars arrive. 3 + 2 = 5. "
                                     "The answer is 5."},
    {"role": "user", "content": "Q: Janet’s ducks lay 16 eggs per day. How many does she sell?\nA:"},
]
CONVERSATIONS = {
    "single": [Q1],
    "system": [SYS, Q1],
    "multi_turn": [SYS, Q1, A1, Q2, A2, Q3],
    "fewshot": FEWSHOT,
    "fewshot_system": [{"role": "system", "content": "Answer step by step."}] + FEWSHOT,
    "history_think": [Q1, A1_THINK, Q2],
    "last_assistant_think": [Q1, A1_THINK],
    "multi_assistant_think": [
        Q1, A1_THINK, Q2,
        {"role": "assistant",
         "content": "<think>first</think>middle<think>\n\nsecond\n\n</think>\n\nfinal"},
        Q3],
    "tool_results": [SYS, Q1, {"role": "assistant", "content": "Calling the tool."},
                     {"role": "tool", "content": "{\"result\": 42}"},
                     {"role": "tool", "content": "line1\nline2 \"quoted\""}],
    "unicode": [{"role": "system", "content": "  \u3000Be brief.\n"},
                {"role": "user", "content": "Ünïcödé: e\u0301 ﬁ ß İ — «quotes» ‘single’ \\backslash\\ "
                                            "tab\there\r\nCRLF {{ not a tag }} {% neither %} 🤖"}],
    "assistant_last_plain": [SYS, Q1, A1],
    "whitespace_content": [{"role": "user", "content": "\n\n  padded  \n\n"}],
}
THINKING = ["default", "on", "off"]


def render(tok, msgs, gen, thinking):
    kwargs = {"date_string": "26 Jul 2024"}
    if thinking != "default":
        kwargs["enable_thinking"] = thinking == "on"
    return tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen, **kwargs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=str(ROOT.parent / "shared"))
    ap.add_argument("--smollm2", default="/work/smollm2/hf")
    ap.add_argument("--out", default=str(FIX / "jinja_cases.json"))
    args = ap.parse_args()
    shared = Path(args.shared) / "tokenizers"
    with tempfile.TemporaryDirectory() as tmp:
        toks = {
            "qwen3": AutoTokenizer.from_pretrained(str(shared / "qwen3")),
            "qwen2_5": AutoTokenizer.from_pretrained(str(shared / "qwen2_5")),
            "llama3_2": AutoTokenizer.from_pretrained(str(shared / "llama3_2")),
            "deepseek_r1": AutoTokenizer.from_pretrained(str(deepseek_dir(tmp))),
            "smollm2": AutoTokenizer.from_pretrained(args.smollm2),
        }
        templates = {}
        for name, tok in toks.items():
            templates[name] = {
                # Llama-3.2's text stays out of the repository (its licence): read it from
                # ../shared/tokenizers/llama3_2/tokenizer_config.json.
                "template": None if name == "llama3_2" else tok.chat_template,
                "bos_token": tok.bos_token,
                "eos_token": tok.eos_token,
            }
        cases = []
        for name, tok in toks.items():
            for conv, msgs in CONVERSATIONS.items():
                for gen in (True, False):
                    if conv.startswith("last_") and gen:
                        continue
                    for thinking in THINKING:
                        cases.append({
                            "name": f"{name}/{conv}/gen={int(gen)}/thinking={thinking}",
                            "template": name, "conversation": conv,
                            "add_generation_prompt": gen, "thinking": thinking,
                            "text": render(tok, msgs, gen, thinking),
                        })
    out = {
        "generator": f"tools/make_chat_template_fixtures.py: transformers {transformers.__version__} "
                     f"apply_chat_template, jinja2 {jinja2.__version__}",
        "date_string": "26 Jul 2024",
        "templates": templates,
        "conversations": CONVERSATIONS,
        "cases": cases,
    }
    Path(args.out).write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n")
    print(f"wrote {args.out}: {len(templates)} templates, {len(cases)} cases")


if __name__ == "__main__":
    main()
