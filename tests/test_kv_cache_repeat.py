"""Grouped-query attention written by repeating k and v to every query head caches k and v before the repeat
(review s8 #19: /tmp/r8/gqa_concat.json, k and v of 2 heads each concatenated 4 times, was priced at 128 elements a
position, 4x the 32 of the same model with ``enable_gqa``; Hugging Face's LLaMA caches k and v before ``repeat_kv``).
"""

from __future__ import annotations

from typing import Any

from archcalc import analyze
from archcalc.inference import inference_costs
from archcalc.spec import parse_spec

# 16 tokens, 64 dims; q 8 heads of 8, k and v 2 heads of 8 (a group of 4 query heads per key/value head)
HEADS, KV_HEADS, D = 8, 2, 8


def _spec(how: str) -> dict[str, Any]:
    layers: list[dict[str, Any]] = [
        {"name": "emb", "type": "embedding", "num_embeddings": 100, "embedding_dim": 64},
        {"name": "q", "type": "linear", "out_features": HEADS * D, "bias": False},
        {"name": "q_heads", "type": "unflatten", "dim": 2, "unflattened_size": [HEADS, D]},
        {"name": "q_t", "type": "transpose", "dim0": 1, "dim1": 2},
        {"name": "k", "type": "linear", "inputs": ["emb"], "out_features": KV_HEADS * D, "bias": False},
        {"name": "k_heads", "type": "unflatten", "dim": 2, "unflattened_size": [KV_HEADS, D]},
        {"name": "k_t", "type": "transpose", "dim0": 1, "dim1": 2},
        {"name": "v", "type": "linear", "inputs": ["emb"], "out_features": KV_HEADS * D, "bias": False},
        {"name": "v_heads", "type": "unflatten", "dim": 2, "unflattened_size": [KV_HEADS, D]},
        {"name": "v_t", "type": "transpose", "dim0": 1, "dim1": 2},
    ]
    group = HEADS // KV_HEADS
    if how == "gqa":  # sdpa repeats them itself
        layers.append({"name": "att", "type": "scaled_dot_product_attention", "inputs": ["q_t", "k_t", "v_t"], "is_causal": True,
                       "enable_gqa": True})
    else:
        layers += [{"name": "k_rep", "type": "concat", "dim": 1, "inputs": ["k_t"] * group},
                   {"name": "v_rep", "type": "concat", "dim": 1, "inputs": ["v_t"] * group}]
        if how == "sdpa":
            layers.append({"name": "att", "type": "scaled_dot_product_attention", "inputs": ["q_t", "k_rep", "v_rep"], "is_causal": True})
        else:  # written out: q k^T under a causal mask, softmax, times v
            layers += [{"name": "k_rep_t", "type": "transpose", "dim0": -2, "dim1": -1, "inputs": ["k_rep"]},
                       {"name": "scores", "type": "matmul", "inputs": ["q_t", "k_rep_t"], "causal": "scores"},
                       {"name": "mask", "type": "causal_mask"},
                       {"name": "p", "type": "softmax", "dim": -1},
                       {"name": "att", "type": "matmul", "inputs": ["p", "v_rep"], "causal": "weights"}]
    layers += [{"name": "o_t", "type": "transpose", "dim0": 1, "dim1": 2},
               {"name": "o_flat", "type": "flatten", "start_dim": 2},
               {"name": "o", "type": "linear", "out_features": 64, "bias": False},
               {"name": "head", "type": "linear", "out_features": 100, "bias": False}]
    return {"name": f"gqa_{how}", "input": [16], "layers": layers}


def test_the_cache_is_read_before_k_and_v_are_repeated_to_every_head() -> None:
    # what a decoder keeps of each position: k and v of the 2 key/value heads of 8, not of the 8 query heads
    per_position = 2 * KV_HEADS * D
    assert per_position == 32
    for how in ("gqa", "sdpa", "written"):
        costs = inference_costs(parse_spec(_spec(how)), 16)
        assert costs.kv_per_position == per_position, how
        assert costs.kv_cache_bytes == per_position * 16 * 2, how  # 16 positions, float16
        assert costs.attention_layers == 1, how
        assert analyze(_spec(how)).kv_cache_per_position == per_position, how  # compare's "KV cache per position"


def test_a_concat_of_different_tensors_is_no_repeat() -> None:
    """A concat of different tensors is not read as a repeat: the 8 heads of keys that reach attention are cached."""
    spec = _spec("sdpa")
    layers = spec["layers"]
    layers.insert(7, {"name": "k2", "type": "linear", "inputs": ["emb"], "out_features": KV_HEADS * D, "bias": False})
    layers.insert(8, {"name": "k2_heads", "type": "unflatten", "dim": 2, "unflattened_size": [KV_HEADS, D]})
    layers.insert(9, {"name": "k2_t", "type": "transpose", "dim0": 1, "dim1": 2})
    k_rep = next(d for d in layers if d["name"] == "k_rep")
    k_rep["inputs"] = ["k_t", "k2_t", "k_t", "k2_t"]  # not one tensor repeated: the 4 * 2 = 8 heads that reach attention
    assert inference_costs(parse_spec(spec), 16).kv_per_position == HEADS * D + KV_HEADS * D
