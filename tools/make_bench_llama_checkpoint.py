#!/usr/bin/env python3
"""Write a random-weight Llama-architecture Hugging Face checkpoint of a chosen shape.

For benchmarks against other engines on the same shape (docs/performance.md, "Side by side with
llama.cpp"): resp reads the directory's config.json (`resp bench generate --config DIR/config.json`),
and llama.cpp's convert_hf_to_gguf.py turns the directory into a GGUF file. A tokenizer directory
is copied in because converters need one; its vocabulary size sets the model's.

    python3 tools/make_bench_llama_checkpoint.py --out /tmp/m768 \\
        --tokenizer-from models/smollm2-135m-instruct   # the 12-layer / 768 shape (default)

Needs numpy and safetensors (pip install numpy safetensors).
"""
import argparse
import json
import shutil
import sys
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, type=Path, help="output directory (created)")
    ap.add_argument("--tokenizer-from", required=True, type=Path,
                    help="directory holding tokenizer.json (and tokenizer_config.json)")
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--head-dim", type=int, default=64)
    ap.add_argument("--ffn", type=int, default=2048)
    ap.add_argument("--tied", action="store_true", help="tie lm_head to the embedding table")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    try:
        import numpy as np
        from safetensors.numpy import save_file
    except ImportError as e:
        print(f"make_bench_llama_checkpoint: error: {e} (pip install numpy safetensors)",
              file=sys.stderr)
        return 1
    tok = args.tokenizer_from / "tokenizer.json"
    if not tok.is_file():
        print(f"make_bench_llama_checkpoint: error: no tokenizer.json in {args.tokenizer_from}",
              file=sys.stderr)
        return 1
    vocab = json.loads(tok.read_text())["model"]["vocab"]
    added = json.loads(tok.read_text()).get("added_tokens", [])
    n_vocab = max(len(vocab), 1 + max([t["id"] for t in added] + list(vocab.values())))

    H, D = args.hidden, args.head_dim
    rng = np.random.default_rng(args.seed)

    def normal(*shape):
        return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float32)

    ones = lambda n: np.ones(n, np.float32)  # noqa: E731
    tensors = {"model.embed_tokens.weight": normal(n_vocab, H), "model.norm.weight": ones(H)}
    if not args.tied:
        tensors["lm_head.weight"] = normal(n_vocab, H)
    for i in range(args.layers):
        p = f"model.layers.{i}."
        tensors.update({
            p + "input_layernorm.weight": ones(H),
            p + "post_attention_layernorm.weight": ones(H),
            p + "self_attn.q_proj.weight": normal(args.heads * D, H),
            p + "self_attn.k_proj.weight": normal(args.kv_heads * D, H),
            p + "self_attn.v_proj.weight": normal(args.kv_heads * D, H),
            p + "self_attn.o_proj.weight": normal(H, args.heads * D),
            p + "mlp.gate_proj.weight": normal(args.ffn, H),
            p + "mlp.up_proj.weight": normal(args.ffn, H),
            p + "mlp.down_proj.weight": normal(H, args.ffn),
        })
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": H,
        "num_hidden_layers": args.layers, "num_attention_heads": args.heads,
        "num_key_value_heads": args.kv_heads, "head_dim": D, "intermediate_size": args.ffn,
        "vocab_size": n_vocab, "max_position_embeddings": 4096, "rms_norm_eps": 1e-5,
        "rope_theta": 100000.0, "tie_word_embeddings": args.tied, "hidden_act": "silu",
        "torch_dtype": "float32",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(args.out / "model.safetensors"), metadata={"format": "pt"})
    (args.out / "config.json").write_text(json.dumps(config, indent=1) + "\n")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        if (args.tokenizer_from / name).is_file():
            shutil.copy(args.tokenizer_from / name, args.out / name)
    n = sum(t.size for t in tensors.values())
    print(f"{args.out}: {n / 1e6:.1f}M parameters, vocabulary {n_vocab}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
