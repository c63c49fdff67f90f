# Written by `resp export --format hetero` next to the weights (src/ckpt/python in resp).
"""Loads a resp hetero export in stock transformers (`trust_remote_code=True`).

The export keeps the dense config and adds `resp_pruning`: for every layer the kept query heads,
KV heads and MLP channels, as ascending ids of the dense model. Row block i of `q_proj` is query
head `heads[i]`; it reads dense KV head `heads[i] // (num_attention_heads // num_key_value_heads)`,
which is row block `kv_heads.index(...)` of `k_proj` / `v_proj`.

The model is the family's own transformers model (Llama, Qwen2, Qwen3) with each layer's
projections built at the kept sizes; everything else, including the attention code, is stock:

* A layer whose kept KV heads each serve the same number of kept query heads (GQA-aligned) maps
  query head i to KV head i // group, which is transformers' own mapping.
* Otherwise (e.g. KV head 0 keeps 1 query head, KV head 1 keeps 3), `k_proj` / `v_proj` hold the
  kept KV rows as stored, and their output repeats each KV head once per query head that reads it;
  the layer then runs as plain multi-head attention and its KV cache holds the repeated heads.
* A layer that keeps no query heads adds only `o_proj`'s bias (if any), and one that keeps no
  channels adds nothing from its MLP.
"""

import warnings

from torch import nn
from transformers import LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM

from .configuration_resp_pruned import RespPrunedLlamaConfig, RespPrunedQwen2Config, RespPrunedQwen3Config


def _ids(value, limit, where):
    if not isinstance(value, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in value):
        raise ValueError(f"{where} must be a list of integers")
    for a, b in zip(value, value[1:]):
        if a >= b:
            raise ValueError(f"{where} must be strictly increasing, got {a} before {b}")
    if value and (value[0] < 0 or value[-1] >= limit):
        raise ValueError(f"{where} holds ids outside [0, {limit})")
    return value


def kept_layers(config):
    """Per layer (heads, kv_heads, channels, kv_of_head) from config.resp_pruning; None if absent.

    kv_of_head[i] is the position in kv_heads of the KV head that kept query head i reads.
    """
    pruning = getattr(config, "resp_pruning", None)
    if pruning is None:
        return None
    where = f"{getattr(config, '_name_or_path', '') or 'config'}: resp_pruning"
    layers = pruning.get("layers") if isinstance(pruning, dict) else None
    if not isinstance(layers, list) or len(layers) != config.num_hidden_layers:
        raise ValueError(f"{where}.layers must list all {config.num_hidden_layers} layers")
    n_heads = config.num_attention_heads
    n_kv = config.num_key_value_heads or n_heads
    group = n_heads // n_kv
    out = []
    for i, layer in enumerate(layers):
        w = f"{where}.layers[{i}]"
        if not isinstance(layer, dict) or not {"heads", "kv_heads", "channels"} <= set(layer):
            raise ValueError(f"{w} needs heads, kv_heads and channels")
        heads = _ids(layer["heads"], n_heads, w + ".heads")
        kv_heads = _ids(layer["kv_heads"], n_kv, w + ".kv_heads")
        channels = _ids(layer["channels"], config.intermediate_size, w + ".channels")
        kv_of_head = []
        for h in heads:
            if h // group not in kv_heads:
                raise ValueError(f"{w}: query head {h} needs KV head {h // group}, which is not kept")
            kv_of_head.append(kv_heads.index(h // group))
        out.append((heads, kv_heads, channels, kv_of_head))
    return out


def _linear(old, in_features=None, out_features=None):
    """A Linear like `old` (bias, dtype, device) with new sizes; its weights come from the file."""
    with warnings.catch_warnings():
        # A layer that keeps no heads or channels has zero-sized projections; torch warns that
        # initialising them does nothing.
        warnings.filterwarnings("ignore", message="Initializing zero-element tensors")
        return nn.Linear(
            old.in_features if in_features is None else in_features,
            old.out_features if out_features is None else out_features,
            bias=old.bias is not None,
            device=old.weight.device,
            dtype=old.weight.dtype,
        )


class KVPerQueryHead(nn.Linear):
    """k_proj / v_proj of a layer that is not GQA-aligned.

    The parameters are the stored kept KV rows; the output lists, for each kept query head in
    order, the head_dim values of the KV head it reads.
    """

    def __init__(self, old, n_kv, head_dim, kv_of_head):
        super().__init__(old.in_features, n_kv * head_dim, bias=old.bias is not None,
                         device=old.weight.device, dtype=old.weight.dtype)
        self.head_dim = head_dim
        self.kv_of_head = list(kv_of_head)

    def forward(self, x):
        y = super().forward(x).unflatten(-1, (-1, self.head_dim))
        return y[..., self.kv_of_head, :].flatten(-2)


class NoHeadsAttention(nn.Module):
    """Attention of a layer that keeps no query heads.

    Holds the (zero-sized) projections and norms so that the checkpoint loads, returns o_proj of
    nothing (its bias, or zeros), and appends empty keys/values to the KV cache so that the
    cache's sequence length stays right when it is read from this layer.
    """

    def __init__(self, attn):
        super().__init__()
        for name, child in attn.named_children():
            setattr(self, name, child)
        self.layer_idx = attn.layer_idx
        self.head_dim = attn.head_dim

    def forward(self, hidden_states, *args, **kwargs):
        # The cache's keyword is `past_key_value`, `past_key_values` or `cache` depending on the
        # transformers version.
        for key in ("cache", "past_key_values", "past_key_value"):
            cache = kwargs.get(key)
            if cache is not None:
                b, t = hidden_states.shape[:2]
                empty = hidden_states.new_zeros(b, 0, t, self.head_dim)
                cache.update(empty, empty, self.layer_idx)
                break
        return self.o_proj(hidden_states[..., :0]), None


def prune_layers(model, config):
    """Rebuilds each decoder layer's projections at the kept sizes of config.resp_pruning."""
    kept = kept_layers(config)
    if kept is None:  # a dense config: the stock model
        return
    for layer, (heads, kv_heads, channels, kv_of_head) in zip(model.layers, kept):
        attn, mlp = layer.self_attn, layer.mlp
        d = attn.head_dim
        n, n_kv = len(heads), len(kv_heads)
        attn.q_proj = _linear(attn.q_proj, out_features=n * d)
        attn.o_proj = _linear(attn.o_proj, in_features=n * d)
        aligned = n > 0 and n % n_kv == 0 and kv_of_head == [i // (n // n_kv) for i in range(n)]
        if aligned or n == 0:
            attn.k_proj = _linear(attn.k_proj, out_features=n_kv * d)
            attn.v_proj = _linear(attn.v_proj, out_features=n_kv * d)
            attn.num_key_value_groups = n // n_kv if n else 1
        else:
            attn.k_proj = KVPerQueryHead(attn.k_proj, n_kv, d, kv_of_head)
            attn.v_proj = KVPerQueryHead(attn.v_proj, n_kv, d, kv_of_head)
            attn.num_key_value_groups = 1
        # Read by the attention code of older transformers versions.
        attn.num_heads = n
        attn.num_key_value_heads = n_kv if aligned else n
        if n == 0:
            layer.self_attn = NoHeadsAttention(attn)
        mlp.gate_proj = _linear(mlp.gate_proj, out_features=len(channels))
        mlp.up_proj = _linear(mlp.up_proj, out_features=len(channels))
        mlp.down_proj = _linear(mlp.down_proj, in_features=len(channels))
        mlp.intermediate_size = len(channels)


class RespPrunedLlamaForCausalLM(LlamaForCausalLM):
    config_class = RespPrunedLlamaConfig

    def __init__(self, config):
        super().__init__(config)
        prune_layers(self.model, config)


class RespPrunedQwen2ForCausalLM(Qwen2ForCausalLM):
    config_class = RespPrunedQwen2Config

    def __init__(self, config):
        super().__init__(config)
        prune_layers(self.model, config)


class RespPrunedQwen3ForCausalLM(Qwen3ForCausalLM):
    config_class = RespPrunedQwen3Config

    def __init__(self, config):
        super().__init__(config)
        prune_layers(self.model, config)
