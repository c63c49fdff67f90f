# Written by `resp export --format hetero` next to the weights (src/ckpt/python in resp).
"""Configs of a resp hetero export: the family's own config, unchanged.

They exist so that config.json's `auto_map` can name a class of the export's own: transformers
then registers the remote model under this class, not under the stock LlamaConfig / Qwen2Config /
Qwen3Config, and a stock model loaded later in the same process keeps its stock class. The
per-layer widths are the config's `resp_pruning` entry, read by modeling_resp_pruned.py.
"""

from transformers import LlamaConfig, Qwen2Config, Qwen3Config


class RespPrunedLlamaConfig(LlamaConfig):
    pass


class RespPrunedQwen2Config(Qwen2Config):
    pass


class RespPrunedQwen3Config(Qwen3Config):
    pass
