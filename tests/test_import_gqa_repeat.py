"""``archcalc import`` of grouped-query attention written the Hugging Face way: k and v of ``n_kv`` heads repeated to
every query head before ``F.scaled_dot_product_attention``, by ``repeat_kv`` (transformers' ``modeling_llama.py``:
``x[:, :, None, :, :].expand(b, kv, n_rep, s, d).reshape(b, kv * n_rep, s, d)``) or by
``torch.repeat_interleave(k, n_rep, dim=1)``.  Both repeat each head n_rep times in place, which is what torch's
``enable_gqa=True`` does to k and v (torch.nn.functional.scaled_dot_product_attention's reference code:
``key.repeat_interleave(query.size(-3) // key.size(-3), -3)``): the import is an sdpa with ``enable_gqa`` over the heads
before the repeat, so the KV cache (``archcalc inference``) holds n_kv heads, not n_heads (Ainslie et al. 2023, GQA,
sec. 2: the cache shrinks by n_heads / n_kv; Hugging Face's cache keeps k and v before ``repeat_kv``).

Before this, import refused both (``x[:, :, None]``: "indexing other than slicing"; ``repeat_interleave``: no layer type).
``x.unsqueeze(2)`` for ``x[:, :, None]``, and ``.contiguous().view(...)`` or ``.flatten(1, 2)`` for the reshape, are the
same repeat (session 10; before, the expand of an unsqueeze was read as the unsqueezed tensor itself).
A repeat that is not this idiom (along another axis, to a count other than q's heads, tiled instead of interleaved, read
by anything but sdpa's k and v) is refused in one line; except ``k.repeat(1, n, 1, 1)`` (and ``torch.tile``), which tiles the
heads (0 1 0 1 ...) and is imported as what it computes, a concat of n copies (session 10; before, refused), whose counts
and cache are grouped-query attention's but whose sdpa is not enable_gqa's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from conftest import cli  # noqa: E402
from lm_models import Llama, LlamaAttention, LlamaConfig  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from archcalc import analyze  # noqa: E402
from archcalc.errors import SpecError  # noqa: E402
from archcalc.inference import inference_costs  # noqa: E402
from archcalc.spec import Architecture, parse_spec  # noqa: E402
from archcalc.torch.fx_import import dumps_spec, spec_from_module  # noqa: E402
from archcalc.torch.verify import verify_spec  # noqa: E402

# a LLaMA-like decoder: 2 layers, 8 query heads, 2 key/value heads (groups of n_rep = 4), head size 64 / 8 = 8
LAYERS, HEADS, KV_HEADS, DIM, T = 2, 8, 2, 64, 16
D_HEAD, N_REP = DIM // HEADS, HEADS // KV_HEADS
CFG = LlamaConfig(vocab_size=100, n_layer=LAYERS, n_head=HEADS, n_kv_head=KV_HEADS, dim=DIM, hidden=128)


def repeat_kv(hidden_states: torch.Tensor, n_rep: int) -> torch.Tensor:
    """transformers' ``repeat_kv`` (models/llama/modeling_llama.py), verbatim: (b, kv, s, d) -> (b, kv * n_rep, s, d)."""
    batch, num_key_value_heads, slen, head_dim = hidden_states.shape
    if n_rep == 1:
        return hidden_states
    hidden_states = hidden_states[:, :, None, :, :].expand(batch, num_key_value_heads, n_rep, slen, head_dim)
    return hidden_states.reshape(batch, num_key_value_heads * n_rep, slen, head_dim)


def repeat_kv_unsqueezed(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """repeat_kv with ``x.unsqueeze(2)`` for ``x[:, :, None, :, :]`` (the same tensor, so the same repeat)."""
    b, kv, s, d = x.shape
    return x.unsqueeze(2).expand(b, kv, n_rep, s, d).reshape(b, kv * n_rep, s, d)


def repeat_kv_viewed(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """``torch.unsqueeze(x, 2)``, the expand made contiguous, then ``view``: a view's result is its shape alone, so the same."""
    b, kv, s, d = x.shape
    return torch.unsqueeze(x, 2).expand(b, kv, n_rep, s, d).contiguous().view(b, kv * n_rep, s, d)


def repeat_kv_flattened(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """The copies merged into the heads by ``flatten(1, 2)`` (axes kv and n_rep: the shape of repeat_kv's reshape)."""
    b, kv, s, d = x.shape
    return x.unsqueeze(2).expand(b, kv, n_rep, s, d).flatten(1, 2)


def _tile(x: torch.Tensor, n: int) -> torch.Tensor:  # heads 0 1 0 1 ...: not what enable_gqa does (0 0 0 0 1 1 1 1)
    b, kv, s, d = x.shape
    return x[:, None].expand(b, n, kv, s, d).reshape(b, n * kv, s, d)


REPEATS: dict[str, Any] = {
    "repeat_kv": lambda k, v, n: (repeat_kv(k, n), repeat_kv(v, n)),
    "repeat_interleave": lambda k, v, n: (torch.repeat_interleave(k, n, dim=1), v.repeat_interleave(n, dim=1)),
    "repeat_kv_contiguous": lambda k, v, n: (repeat_kv(k, n).contiguous(), repeat_kv(v, n).contiguous()),
    "unsqueeze": lambda k, v, n: (repeat_kv_unsqueezed(k, n), repeat_kv_unsqueezed(v, n)),
    "unsqueeze_view": lambda k, v, n: (repeat_kv_viewed(k, n), repeat_kv_viewed(v, n)),
    "unsqueeze_flatten": lambda k, v, n: (repeat_kv_flattened(k, n), repeat_kv_flattened(v, n)),
    # tiled (heads 0 1 0 1 ...): not grouped-query attention as enable_gqa says it, imported as what it is, a concat of copies
    "tensor_repeat": lambda k, v, n: (k.repeat(1, n, 1, 1), v.repeat(1, n, 1, 1)),
    "torch_tile": lambda k, v, n: (torch.tile(k, (n, 1, 1)), v.tile(1, n, 1, 1)),
    # not the idiom, each refused:
    "positions": lambda k, v, n: (torch.repeat_interleave(k, n, dim=2), torch.repeat_interleave(v, n, dim=2)),
    "half_the_groups": lambda k, v, n: (repeat_kv(k, n // 2), repeat_kv(v, n // 2)),
    "tiled": lambda k, v, n: (_tile(k, n), _tile(v, n)),
    "k_only": lambda k, v, n: (repeat_kv(k, n), torch.cat([v] * n, dim=1)),
    "k_differently": lambda k, v, n: (repeat_kv(k, n), repeat_kv(torch.cat([v, v], dim=1), n // 2)),
}


class RepeatAttention(LlamaAttention):
    """tests/lm_models.py's LLaMA attention (rotary embeddings written inline) with k and v repeated to q's heads before
    a plain sdpa, as transformers' ``sdpa_attention_forward`` does (``repeat_kv``, then ``is_causal=True``)."""

    def __init__(self, cfg: LlamaConfig, how: str, written_out: bool = False) -> None:
        super().__init__(cfg)
        self.how, self.written_out = how, written_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bsz, seqlen, _ = x.shape
        q, k, v = self.rotated_qkv(x)
        n_rep = self.n_head // self.n_kv_head
        k, v = REPEATS[self.how](k, v, n_rep)
        if self.written_out:  # transformers' eager_attention_forward: the repeated keys read by a matmul
            out = F.softmax(q @ k.transpose(2, 3) * self.head_dim**-0.5, dim=-1) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=self.how in ("half_the_groups", "positions"))
        return self.wo(out.transpose(1, 2).reshape(bsz, seqlen, -1))


def llama(how: str = "repeat_kv", written_out: bool = False, cfg: LlamaConfig = CFG) -> Llama:
    torch.manual_seed(0)
    model = Llama(cfg)
    for block in model.layers:
        block.attention = RepeatAttention(cfg, how, written_out)
    return model


def llama_repeat_kv() -> Llama:
    """The factory ``archcalc import`` and ``verify`` load (tests/ is on the path)."""
    return llama("repeat_kv")


# the small GQA model of each spelling the CLI test loads: 4 query heads, 2 key/value heads (n_rep = 2), head size 32 / 4 = 8
SMALL = LlamaConfig(vocab_size=100, n_layer=LAYERS, n_head=4, n_kv_head=2, dim=32, hidden=64)


def small_unsqueeze() -> Llama:
    return llama("unsqueeze", cfg=SMALL)


def small_unsqueeze_view() -> Llama:
    return llama("unsqueeze_view", cfg=SMALL)


def small_unsqueeze_flatten() -> Llama:
    return llama("unsqueeze_flatten", cfg=SMALL)


def small_tensor_repeat() -> Llama:
    return llama("tensor_repeat", cfg=SMALL)


def repeat_kv_meta(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """Meta's LLaMA reference (llama/model.py) ``repeat_kv``, verbatim: (bs, slen, kv, d) -> (bs, slen, kv * n_rep, d),
    the heads repeated before the transpose that puts them first."""
    bs, slen, n_kv_heads, head_dim = x.shape
    if n_rep == 1:
        return x
    return x[:, :, :, None, :].expand(bs, slen, n_kv_heads, n_rep, head_dim).reshape(bs, slen, n_kv_heads * n_rep, head_dim)


class MetaLayoutAttention(LlamaAttention):
    """Meta's order: heads repeated on (b, s, heads, d), then ``transpose(1, 2)``, then sdpa (no rotary embedding here)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bsz, seqlen, _ = x.shape
        n_rep = self.n_head // self.n_kv_head
        q = self.wq(x).view(bsz, seqlen, self.n_head, self.head_dim)
        k = repeat_kv_meta(self.wk(x).view(bsz, seqlen, self.n_kv_head, self.head_dim), n_rep)
        v = repeat_kv_meta(self.wv(x).view(bsz, seqlen, self.n_kv_head, self.head_dim), n_rep)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.wo(out.transpose(1, 2).reshape(bsz, seqlen, -1))


def imported(model: nn.Module, shape: Any = (T,)) -> Architecture:
    return parse_spec(json.loads(dumps_spec(spec_from_module(model, list(shape)))))


def test_torch_repeats_k_and_v_as_enable_gqa_does() -> None:
    """The premise: both spellings give sdpa the output of ``enable_gqa=True`` over the heads before the repeat."""
    q, k, v = torch.randn(1, HEADS, T, D_HEAD), torch.randn(1, KV_HEADS, T, D_HEAD), torch.randn(1, KV_HEADS, T, D_HEAD)
    want = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    for how in ("repeat_kv", "repeat_interleave", "unsqueeze", "unsqueeze_view", "unsqueeze_flatten"):
        rk, rv = REPEATS[how](k, v, N_REP)  # head i reads kv head i // n_rep, as torch's enable_gqa repeats them
        assert torch.equal(rk, k.repeat_interleave(N_REP, dim=1)) and torch.equal(rv, v.repeat_interleave(N_REP, dim=1)), how
        rk, rv = REPEATS[how](k, v, N_REP)
        assert torch.allclose(F.scaled_dot_product_attention(q, rk, rv, is_causal=True), want, atol=1e-6), how
    tk, tv = REPEATS["tiled"](k, v, N_REP)
    assert not torch.allclose(F.scaled_dot_product_attention(q, tk, tv, is_causal=True), want, atol=1e-3)
    for how in ("tensor_repeat", "torch_tile"):  # head i reads kv head i % n_kv: the tiling above, a concat of copies
        rk, rv = REPEATS[how](k, v, N_REP)
        assert torch.equal(rk, tk) and torch.equal(rv, tv) and torch.equal(rk, torch.cat([k] * N_REP, dim=1)), how
        assert torch.equal(F.scaled_dot_product_attention(q, rk, rv, is_causal=True), F.scaled_dot_product_attention(q, tk, tv, is_causal=True))


@pytest.mark.parametrize("how", ["repeat_kv", "repeat_interleave", "repeat_kv_contiguous", "unsqueeze", "unsqueeze_view", "unsqueeze_flatten"])
def test_repeated_heads_import_as_grouped_query_attention_and_verify(how: str) -> None:
    model = llama(how)
    arch = imported(model)
    sdpa = [layer for layer in arch.layers if layer.kind == "scaled_dot_product_attention"]
    assert len(sdpa) == LAYERS and all(layer.enable_gqa and layer.is_causal for layer in sdpa)  # type: ignore[attr-defined]
    rows = {r.name: r for r in analyze(arch, convention="torch").rows}
    # sdpa reads k and v before the repeat: 2 heads of 8, while q has 8 heads
    read = [[rows[i].output_shape for i in rows[layer.name].inputs] for layer in sdpa]
    assert read == [[(HEADS, T, D_HEAD), (KV_HEADS, T, D_HEAD), (KV_HEADS, T, D_HEAD)]] * LAYERS
    # its work follows q's heads, as torch's sdpa formula: q k^T and att v, heads x T x T x d each
    assert [rows[layer.name].macs for layer in sdpa] == [2 * HEADS * T * T * D_HEAD] * LAYERS
    assert rows["layers.0.attention.wk"].params == DIM * KV_HEADS * D_HEAD  # 64 x (2 heads x 8), no bias
    # the same counts as the model written with enable_gqa=True (tests/lm_models.py's Llama)
    torch.manual_seed(0)
    gqa = analyze(imported(Llama(CFG)), convention="torch").totals
    assert {k: analyze(arch, convention="torch").totals[k] for k in ("params", "macs")} == {k: gqa[k] for k in ("params", "macs")}
    result = verify_spec(arch, model)
    assert result.ok, result.failure_message()
    checked = [lc for lc in result.layers if lc.type == "scaled_dot_product_attention"]
    # wired to q, and to k and v before the repeat; the model's k and v, repeated to q's heads, read as enable_gqa
    assert len(checked) == LAYERS and all({"inputs", "enable_gqa"} <= set(lc.compared) and lc.ok for lc in checked)


def test_heads_repeated_before_the_transpose_import_the_same() -> None:
    """A transpose of a repeat is the repeat of the transpose: sdpa reads k and v of 2 heads, transposed before the
    repeat, and the model verifies (its repeat followed through the transpose)."""
    torch.manual_seed(0)
    model = Llama(CFG)
    for block in model.layers:
        block.attention = MetaLayoutAttention(CFG)
    arch = imported(model)
    rows = {r.name: r for r in analyze(arch, convention="torch").rows}
    sdpa = [layer for layer in arch.layers if layer.kind == "scaled_dot_product_attention"]
    assert all(layer.enable_gqa for layer in sdpa)  # type: ignore[attr-defined]
    read = [[(rows[i].type, rows[i].output_shape) for i in rows[layer.name].inputs] for layer in sdpa]
    assert read == [[("transpose", (HEADS, T, D_HEAD)), ("transpose", (KV_HEADS, T, D_HEAD)), ("transpose", (KV_HEADS, T, D_HEAD))]] * LAYERS
    assert inference_costs(arch, 32).kv_cache_bytes == 2 * LAYERS * 32 * KV_HEADS * D_HEAD * 2
    result = verify_spec(arch, model)
    assert result.ok, result.failure_message()


def test_the_kv_cache_holds_the_heads_before_the_repeat() -> None:
    """KV cache of S cached positions in float16 (2 bytes): 2 (k and v) x l layers x S x n_kv heads x d_head x 2 bytes,
    n_heads / n_kv = 4 times less than if the repeated heads were cached."""
    S = 32
    costs = inference_costs(imported(llama("repeat_kv")), S)
    assert costs.attention_layers == LAYERS
    assert costs.kv_per_position == 2 * LAYERS * KV_HEADS * D_HEAD == 64
    assert costs.kv_cache_bytes == 2 * LAYERS * S * KV_HEADS * D_HEAD * 2 == 4096


def test_cli_imports_verifies_and_prices_the_cache(tmp_path: Path) -> None:
    out = tmp_path / "gqa.json"
    r = cli("import", "test_import_gqa_repeat:llama_repeat_kv", "--input", str(T), "-o", str(out))
    assert r.code == 0, r.err
    r = cli("verify", str(out), "--module", "test_import_gqa_repeat:llama_repeat_kv")
    assert r.code == 0, r.out + r.err
    r = cli("inference", str(out), "--cache", "32", "--format", "json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["kv_cache_bytes"] == 2 * LAYERS * 32 * KV_HEADS * D_HEAD * 2  # float16


@pytest.mark.parametrize("factory", ["small_unsqueeze", "small_unsqueeze_view", "small_unsqueeze_flatten"])
def test_cli_reads_the_unsqueeze_spellings_of_repeat_kv(tmp_path: Path, factory: str) -> None:
    """4 query heads and 2 key/value heads, k and v repeated by ``x.unsqueeze(2).expand(...)`` and a reshape, a contiguous
    view or ``flatten(1, 2)`` (before: "cannot reshape 2×1×16×8 (256 elements) to 4×16×8 (512)", or for the flatten "q has
    4 heads and k 2": the expand was read as the unsqueezed tensor itself).  Imported as sdpa with enable_gqa over the 2
    heads, verified against the model, and the cache: 2 (k and v) x 2 layers x 32 positions x 2 heads x 8 x 2 bytes."""
    out = tmp_path / "gqa.json"
    r = cli("import", f"test_import_gqa_repeat:{factory}", "--input", str(T), "-o", str(out))
    assert r.code == 0, r.err
    sdpa = [layer for layer in json.loads(out.read_text())["layers"] if layer["type"] == "scaled_dot_product_attention"]
    assert len(sdpa) == LAYERS and all(layer["enable_gqa"] for layer in sdpa)
    r = cli("verify", str(out), "--module", f"test_import_gqa_repeat:{factory}")
    assert r.code == 0 and "\nOK: " in r.out and "attention flags" in r.out, r.out + r.err
    r = cli("inference", str(out), "--cache", "32", "--format", "json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["kv_cache_bytes"] == 2 * LAYERS * 32 * 2 * 8 * 2 == 4096
    torch.manual_seed(0)  # the same counts as the model written with enable_gqa=True
    written = analyze(imported(Llama(SMALL)), convention="torch").totals
    totals = analyze(parse_spec(json.loads(out.read_text())), convention="torch").totals
    assert (totals["params"], totals["macs"]) == (written["params"], written["macs"])


@pytest.mark.parametrize("how", ["tensor_repeat", "torch_tile"])
def test_heads_tiled_by_repeat_import_as_the_concat_they_are(how: str) -> None:
    """``k.repeat(1, n_rep, 1, 1)`` (or ``torch.tile``) tiles the heads, 0 1 0 1 ...: query head i reads key/value head
    i % n_kv, where enable_gqa's head i reads i // n_rep (the premise test above).  So it is not imported as enable_gqa
    (before: refused, "Tensor.repeat has no archcalc layer type"), but as what it computes, ``torch.cat([k] * n_rep, 1)``:
    a concat of n_rep copies of k's 2 heads along the heads, read by a plain sdpa of 8 heads each.  The counts are
    grouped-query attention's all the same: the weights of 2 key/value heads, sdpa's work over q's 8 heads, and the KV
    cache of the 2 heads before the copies (archcalc.report.cached_per_position); the copy itself is counted as the
    concat's output, which torch's repeat makes."""
    model = llama(how)
    arch = imported(model)
    rows = {r.name: r for r in analyze(arch, convention="torch").rows}
    sdpa = [layer for layer in arch.layers if layer.kind == "scaled_dot_product_attention"]
    assert len(sdpa) == LAYERS and not any(layer.enable_gqa for layer in sdpa)  # type: ignore[attr-defined]
    for layer in sdpa:
        q, k, v = (rows[i] for i in rows[layer.name].inputs)
        assert q.output_shape == k.output_shape == v.output_shape == (HEADS, T, D_HEAD)
        for tiled in (k, v):
            assert tiled.type == "concat" and tiled.params == tiled.macs == 0
            assert len(tiled.inputs) == N_REP and len(set(tiled.inputs)) == 1 and rows[tiled.inputs[0]].output_shape == (KV_HEADS, T, D_HEAD)
    assert [rows[layer.name].macs for layer in sdpa] == [2 * HEADS * T * T * D_HEAD] * LAYERS
    torch.manual_seed(0)
    gqa = analyze(imported(Llama(CFG)), convention="torch").totals
    assert {k: analyze(arch, convention="torch").totals[k] for k in ("params", "macs")} == {k: gqa[k] for k in ("params", "macs")}
    assert inference_costs(arch, 32).kv_cache_bytes == 2 * LAYERS * 32 * KV_HEADS * D_HEAD * 2 == 4096  # float16
    result = verify_spec(arch, model)
    assert result.ok, result.failure_message()
    # and verify tells the tiling from the grouping the other way round too: this spec against repeat_kv's model
    result = verify_spec(arch, llama("repeat_kv"))
    assert {(r.quantity, r.analytic, r.measured) for r in result.mismatches} == {("enable_gqa", False, True)}


def test_cli_imports_heads_tiled_by_repeat_and_verifies(tmp_path: Path) -> None:
    """4 query heads, 2 key/value heads tiled by ``.repeat(1, 2, 1, 1)``: import, ``verify --module`` OK, and the cache of
    the 2 heads before the copies: 2 (k and v) x 2 layers x 32 positions x 2 heads x 8 x 2 bytes."""
    out = tmp_path / "tiled.json"
    r = cli("import", "test_import_gqa_repeat:small_tensor_repeat", "--input", str(T), "-o", str(out))
    assert r.code == 0, r.err
    layers = json.loads(out.read_text())["layers"]
    assert sum(layer["type"] == "concat" for layer in layers) == 2 * LAYERS
    assert not any(layer.get("enable_gqa") for layer in layers if layer["type"] == "scaled_dot_product_attention")
    r = cli("verify", str(out), "--module", "test_import_gqa_repeat:small_tensor_repeat")
    assert r.code == 0 and "\nOK: " in r.out, r.out + r.err
    r = cli("inference", str(out), "--cache", "32", "--format", "json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["kv_cache_bytes"] == 2 * LAYERS * 32 * 2 * 8 * 2 == 4096


class Repeat(nn.Module):
    def __init__(self, *counts: Any, tile: bool = False) -> None:
        super().__init__()
        self.counts, self.tile = counts, tile

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (torch.tile(x, self.counts) if self.tile else x.repeat(*self.counts)).relu()


@pytest.mark.parametrize(("model", "concats"), [
    (Repeat(1, 2, 3), [(1, 2), (2, 3)]),  # (4, 5) -> (8, 15): a concat along each axis tiled
    (Repeat(3, 1, tile=True), [(1, 3)]),  # torch.tile's counts are the last axes': (1, 3, 1)
    (Repeat(1, 1, 1), []),  # a copy: no layer
])
def test_repeat_of_any_axis_after_the_batch_is_a_concat_with_torchs_shape(model: nn.Module, concats: list[tuple[int, int]]) -> None:
    arch = imported(model, (4, 5))
    assert [(layer.dim, len(layer.inputs)) for layer in arch.layers if layer.kind == "concat"] == concats  # type: ignore[attr-defined]
    assert analyze(arch).rows[-1].output_shape == tuple(model(torch.zeros(2, 4, 5)).shape[1:])


@pytest.mark.parametrize(("model", "why"), [
    (Repeat(2, 1, 1), r"repeat by \(2, 1, 1\): archcalc reads whole-number counts of at least 1 and the batch axis kept"),
    (Repeat(1, 0, 1), r"repeat by \(1, 0, 1\): "),
    (Repeat(1, 1, 2, 1), r"repeat by \(1, 1, 2, 1\) of a tensor of 3 axes \(N, 4, 5\): archcalc reads one count per axis"),
])
def test_repeats_archcalc_cannot_write_are_refused(model: nn.Module, why: str) -> None:
    model(torch.zeros(2, 4, 5))  # (it runs)
    with pytest.raises(SpecError, match=why) as e:
        spec_from_module(model, [4, 5])
    assert "\n" not in str(e.value)


def test_verify_tells_repeated_heads_from_tiled_ones() -> None:
    """The spec imported with repeat_kv against the same model with k and v tiled to 8 heads (0 1 0 1 ...: each query
    head reads another key/value head than with enable_gqa): every count agrees (torch's sdpa formula follows q's heads),
    the flag does not, and verify fails on it, on that alone."""
    arch = imported(llama("repeat_kv"))
    result = verify_spec(arch, llama("tiled"))
    assert not result.ok
    assert {(r.quantity, r.analytic, r.measured) for r in result.mismatches} == {("enable_gqa", True, False)}
    assert [r.module for r in result.mismatches] == ["scaled_dot_product_attention", "scaled_dot_product_attention_1"]


@pytest.mark.parametrize(("how", "written_out", "why"), [
    ("positions", False, r"^node 'scaled_dot_product_attention' \(call_function torch\._C\._nn\.scaled_dot_product_attention\) has no "
     r"archcalc layer type: k and v are repeated along axes 2 and 2, not along the heads \(axis 1, -3\): archcalc reads k and v of "
     r"fewer heads repeated to q's \(grouped-query attention\)$"),
    ("half_the_groups", False, r"^node 'scaled_dot_product_attention' .* has no archcalc layer type: k and v's 2 heads repeated 2 times are "
     r"4, not q's 8: "),
    ("tiled", False, r"^node 'expand' \(call_method Tensor\.expand\) has no archcalc layer type: expand of .* to \(N, 4, 2, 16, 8\): copies "
     r"before the first axis after the batch repeat no axis of it"),
    ("k_only", False, r"^node 'scaled_dot_product_attention' .* has no archcalc layer type: k's heads are repeated \(repeat_kv, "
     r"repeat_interleave\) and v is the tensor 'layers\.0\.attention\.cat'"),
    ("k_differently", False, r"^node 'scaled_dot_product_attention' .*: k's 2 heads are repeated 4 times and v's 4 2 times: "),
    ("repeat_kv", True, r"^node 'matmul' \(call_function operator\.matmul\) has no archcalc layer type: expected a tensor argument, got "
     r"'layers\.0\.attention\.transpose_4' with each entry of axis 1 repeated 4 times \(repeat_kv, repeat_interleave\): archcalc reads "
     r"such a repeat only as the k and v of F\.scaled_dot_product_attention"),
], ids=["along-positions", "count-not-qs-heads", "tiled", "v-not-repeated", "k-and-v-differently", "read-by-matmul"])
def test_repeats_that_are_not_grouped_query_attention_are_refused(how: str, written_out: bool, why: str) -> None:
    """Each of these models runs in torch; none is grouped-query attention as enable_gqa says it, so none is imported:
    one line naming the node."""
    model = llama(how, written_out)
    model(torch.zeros(1, T, dtype=torch.long))  # (it runs)
    with pytest.raises(SpecError, match=why) as e:
        spec_from_module(model, [T])
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(("index", "why"), [
    ((slice(None), None), r"expand of .*: copies before the first axis after the batch"),  # x[:, None]: a new axis 1, then its copies
    ((None,), r"a new axis before the batch axis"),
    ((slice(None), slice(None), None, 0), r"indexing with None other than one new axis among whole axes \(\[:, :, None, 0\]\)"),
])
def test_other_new_axes_are_refused(index: Any, why: str) -> None:
    class NewAxis(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x[index].expand(-1, 4, 4, 8, 8).sum(1)

    with pytest.raises(SpecError, match=why) as e:
        spec_from_module(NewAxis(), [4, 8, 8])
    assert "\n" not in str(e.value)


class UnsqueezeExpand(nn.Module):
    """x (C, H, W) = (3, 5, 5) with a new axis at ``dim``, expanded to ``times`` copies there, merged by ``flatten(1, 2)``."""

    def __init__(self, dim: int, times: int) -> None:
        super().__init__()
        self.dim, self.times = dim, times

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        sizes = [b, c, h, w]
        sizes.insert(self.dim, self.times)
        return x.unsqueeze(self.dim).expand(*sizes).flatten(1, 2).relu()


def test_copies_of_an_unsqueezed_axis_are_not_read_as_the_tensor_itself() -> None:
    """Before, ``x.unsqueeze(d).expand(...)`` was the unsqueezed tensor itself: x (3, 5, 5) with 4 copies after its
    channels, merged by ``flatten(1, 2)``, imported as (3, 5, 5) with exit 0, where torch makes 4 x 3 = 12 channels.
    Now the copies after an axis are repeat_kv's, which only sdpa's k and v may read (refused here, in one line); copies
    before the first axis are refused as no repeat in place; one copy (an expand that copies nothing) is still the
    unsqueeze's reshape, 3 x 1 channels flattened back to (3, 5, 5), as torch has it."""
    x = torch.zeros(1, 3, 5, 5)
    assert tuple(UnsqueezeExpand(2, 4)(x).shape) == (1, 12, 5, 5) and tuple(UnsqueezeExpand(1, 4)(x).shape) == (1, 12, 5, 5)
    for model, why in ((UnsqueezeExpand(2, 4), r"^node 'relu' .*: expected a tensor argument, got 'input' with each entry of axis 1 "
                        r"repeated 4 times \(repeat_kv, repeat_interleave\): archcalc reads such a repeat only as the k and v of "),
                       (UnsqueezeExpand(1, 4), r"^node 'expand' .*: expand of 'input' with a new axis .* to \(N, 4, 3, 5, 5\): copies "
                        r"before the first axis after the batch repeat no axis of it")):
        with pytest.raises(SpecError, match=why) as e:
            spec_from_module(model, [3, 5, 5])
        assert "\n" not in str(e.value)
    one = imported(UnsqueezeExpand(2, 1), (3, 5, 5))
    assert [layer.kind for layer in one.layers] == ["reshape", "flatten", "relu"]
    assert analyze(one).rows[-1].output_shape == tuple(UnsqueezeExpand(2, 1)(x).shape[1:]) == (3, 5, 5)


@pytest.mark.parametrize("how", ["repeat_kv", "unsqueeze_flatten", "tensor_repeat"])
def test_llama2_70b_layout_with_repeat_kv_has_the_published_count_and_cache(how: str) -> None:
    """LLaMA-2 70B's sizes (Touvron et al. 2023, Table 1: 70B uses GQA; meta-llama/Llama-2-70b-hf config: hidden 8192,
    intermediate 28672, 80 layers, 64 heads, 8 key/value heads, vocabulary 32000), on the meta device, k and v repeated by
    repeat_kv (or its unsqueeze/flatten spelling; or tiled by repeat, a concat of copies): 68,976,648,192 parameters, and
    a KV cache of 2 x 80 layers x 4096 positions x 8 heads x 128 x 2 bytes (float16) = 1,342,177,280 B (1.25 GiB) at the
    4096-token context, 8 times less than 64 heads would keep."""
    cfg = LlamaConfig(vocab_size=32000, n_layer=80, n_head=64, n_kv_head=8, dim=8192, hidden=28672)
    with torch.device("meta"):
        model = Llama(cfg)
        for block in model.layers:
            block.attention = RepeatAttention(cfg, how)
    arch = imported(model, (4096,))
    h, kv_d, ffn, V, layers = 8192, 8 * 128, 28672, 32000, 80
    per_layer = 2 * h + 2 * h * h + 2 * h * kv_d + 3 * h * ffn  # two RMSNorms, q and o, k and v (8 heads of 128), gate/up/down
    assert analyze(arch, convention="torch").totals["params"] == V * h + layers * per_layer + h + h * V == 68_976_648_192
    assert inference_costs(arch, 4096).kv_cache_bytes == 2 * layers * 4096 * 8 * 128 * 2 == 1_342_177_280


# multi-query attention (Shazeer 2019, "Fast Transformer Decoding: One Write-Head is All You Need"): one key/value head
# shared by 4 query heads of 32 / 4 = 8, grouped-query attention's n_kv = 1 (Ainslie et al. 2023, sec. 2)
MQA = LlamaConfig(vocab_size=100, n_layer=LAYERS, n_head=4, n_kv_head=1, dim=32, hidden=64)


def mqa(how: str) -> Llama:
    if how == "enable_gqa":  # tests/lm_models.py's Llama: sdpa with enable_gqa=True, no repeat
        torch.manual_seed(0)
        return Llama(MQA)
    return llama(how, cfg=MQA)


def mqa_repeat_kv() -> Llama:
    return mqa("repeat_kv")


def mqa_unsqueeze_flatten() -> Llama:
    return mqa("unsqueeze_flatten")


def mqa_repeat_interleave() -> Llama:
    return mqa("repeat_interleave")


def mqa_enable_gqa() -> Llama:
    return mqa("enable_gqa")


@pytest.mark.parametrize("how", ["repeat_kv", "unsqueeze_flatten", "repeat_interleave", "enable_gqa"])
def test_multi_query_attention_imports_as_grouped_query_attention_of_one_kv_head(tmp_path: Path, how: str) -> None:
    """n_kv = 1 imports as any n_kv: sdpa with enable_gqa over k and v of 1 head, verified, and a cache of that 1 head.
    Before (review s10, section 11): refused, "node 'getattr_2' (call_function getattr) has no archcalc layer type: attribute
    'shape'" (k's view(b, s, 1, d) of (b, s, d) was read as the first step of a channel shuffle, s groups of 1 channel), and
    with enable_gqa=True, no repeat, the same view was refused at the rotary's k * cos."""
    factory = f"test_import_gqa_repeat:mqa_{how}"
    out = tmp_path / "mqa.json"
    r = cli("import", factory, "--input", str(T), "-o", str(out))
    assert r.code == 0, r.err
    arch = parse_spec(json.loads(out.read_text()))
    rows = {row.name: row for row in analyze(arch, convention="torch").rows}
    sdpa = [layer for layer in arch.layers if layer.kind == "scaled_dot_product_attention"]
    assert len(sdpa) == LAYERS and all(layer.enable_gqa and layer.is_causal for layer in sdpa)  # type: ignore[attr-defined]
    read = [[rows[i].output_shape for i in rows[layer.name].inputs] for layer in sdpa]
    assert read == [[(4, T, 8), (1, T, 8), (1, T, 8)]] * LAYERS  # q of 4 heads, k and v of 1
    # params: embedding 100 x 32, per layer wq 32 x 32, wk and wv 32 x (1 head x 8), wo 32 x 32, the SwiGLU's 3 x 32 x 64,
    # 2 RMSNorms of 32; the final RMSNorm 32 and the head 32 x 100 (Llama's own parameters, counted by torch)
    per_layer = 32 * 32 + 2 * 32 * 8 + 32 * 32 + 3 * 32 * 64 + 2 * 32
    assert analyze(arch, convention="torch").totals["params"] == 100 * 32 + LAYERS * per_layer + 32 + 32 * 100
    assert analyze(arch, convention="torch").totals["params"] == sum(p.numel() for p in mqa(how).parameters())
    r = cli("verify", str(out), "--module", factory)
    assert r.code == 0 and "\nOK: " in r.out, r.out + r.err
    # the KV cache of 32 positions in float16: 2 (k and v) x 2 layers x 32 x 1 head x 8 x 2 bytes (at decode, one position
    # a step: k's view splits d into one head, not the positions into (s, 1))
    r = cli("inference", str(out), "--cache", "32", "--format", "json")
    assert r.code == 0, r.err
    costs = json.loads(r.out)
    assert costs["kv_per_position"] == 2 * LAYERS * 1 * 8 == 32
    assert costs["kv_cache_bytes"] == 2 * LAYERS * 32 * 1 * 8 * 2 == 2048
