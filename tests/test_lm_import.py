"""``archcalc import`` of plain-torch language models (issue 12 item 5), then ``verify`` against them.

The models are in ``tests/lm_models.py``: a GPT written as nanoGPT writes it (nn.Embedding for
tokens and positions, ``torch.arange`` positions, ``c_attn(x).split``, view/transpose heads,
``F.scaled_dot_product_attention(is_causal=True)``, the head tied to ``wte``) and a LLaMA layout
(RMSNorm, SwiGLU, no biases, grouped-query attention through ``enable_gqa``).  Big models are built
on the ``meta`` device: no weights are allocated, and torch measures them there.

Published figures:
* GPT-2 small (Radford et al. 2019; the released checkpoint, Hugging Face config: vocabulary
  50257, 1024 positions, 12 layers, hidden 768): 124,439,808 parameters, head tied to wte.
* LLaMA-2 7B (Touvron et al. 2023, Table 1; Llama-2-7b-hf config): 6,738,415,616 parameters.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from conftest import SPECS, cli  # noqa: E402
from lm_models import GPT, GPTConfig, GPTInference, Llama, LlamaConfig, RotaryEmbedding, rotate_half  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from archcalc import analyze  # noqa: E402
from archcalc.errors import SpecError  # noqa: E402
from archcalc.spec import Architecture, load_spec, parse_spec  # noqa: E402
from archcalc.torch.fx_import import dumps_spec, spec_from_module  # noqa: E402
from archcalc.torch.verify import verify_spec  # noqa: E402

CONVENTIONS = ("lecture", "torch")  # as the zoo round trip of tests/test_fx_import.py
TINY = GPTConfig(vocab_size=100, block_size=32, n_layer=2, n_head=4, n_embd=32)


def imported(model: nn.Module, shape: Any) -> Architecture:
    """Import ``model`` and read the spec back through its JSON text, as a file would be."""
    return parse_spec(json.loads(dumps_spec(spec_from_module(model, shape))))


def types_of(model: nn.Module, shape: Any) -> list[str]:
    return [d["type"] for d in spec_from_module(model, shape)["layers"]]


def on_meta(factory: Any, *args: Any) -> Any:
    with torch.device("meta"):
        return factory(*args)


def counted(arch: Architecture, convention: str) -> list[tuple[Any, ...]]:
    """(type, output shape, params, MACs, FLOPs) of each row that holds weights or computes."""
    return [(r.type, r.output_shape, r.params, r.macs, r.flops) for r in analyze(arch, convention=convention).rows if r.params or r.flops]


# ----- GPT-2 in nanoGPT style ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gpt2() -> tuple[nn.Module, Architecture]:
    model = on_meta(GPT)
    return model, imported(model, [1024])


def test_gpt2_imports_to_the_published_counts(gpt2: tuple[nn.Module, Architecture]) -> None:
    _, arch = gpt2
    h, s, V, layers = 768, 1024, 50257, 12
    per_layer = 2 * 2 * h + (h * 3 * h + 3 * h) + (h * h + h) + (h * 4 * h + 4 * h) + (4 * h * h + h)  # 2 LayerNorms, c_attn, c_proj, MLP
    totals = analyze(arch, convention="torch").totals
    assert totals["params"] == V * h + 1024 * h + layers * per_layer + 2 * h == 124_439_808  # wte, wpe, blocks, ln_f; the head is wte
    # torch counts per layer the four linears (12 s h^2) and attention's two products (2 s^2 h, all s x s scores even when
    # causal); then the head s h V
    assert totals["macs"] == layers * (12 * s * h**2 + 2 * s**2 * h) + s * h * V == 145_824_153_600


def test_gpt2_imports_as_the_zoo_spec_under_every_convention(gpt2: tuple[nn.Module, Architecture]) -> None:
    """Layer for layer (those with weights or arithmetic) and in total, the import is specs/gpt2.json."""
    _, arch = gpt2
    zoo = load_spec(SPECS / "gpt2.json")
    for convention in CONVENTIONS:
        want, got = analyze(zoo, convention=convention).totals, analyze(arch, convention=convention).totals
        assert {k: got[k] for k in ("params", "macs", "flops")} == {k: want[k] for k in ("params", "macs", "flops")}
        assert counted(arch, convention) == counted(zoo, convention)


def test_gpt2_import_keeps_the_tied_head_and_the_learned_positions(gpt2: tuple[nn.Module, Architecture]) -> None:
    _, arch = gpt2
    by = {layer.name: layer for layer in arch.layers}
    assert by["lm_head"].tie_weight == "transformer.wte"  # type: ignore[attr-defined]
    assert by["transformer.wpe"].indices == "positions" and by["transformer.wpe"].inputs == ["input"]  # type: ignore[attr-defined]
    rows = {r.name: r for r in analyze(arch, convention="torch").rows}
    assert rows["lm_head"].params == 0 and rows["transformer.wte"].params == 50257 * 768  # counted once, at its owner
    assert rows["transformer.wpe"].output_shape == (1024, 768)
    sdpa = [r for r in rows.values() if r.type == "scaled_dot_product_attention"]
    assert len(sdpa) == 12 and all(r.output_shape == (12, 1024, 64) for r in sdpa)  # (heads, s, h / heads)


def test_gpt2_import_verifies_against_the_model(gpt2: tuple[nn.Module, Architecture]) -> None:
    """torch measures the nanoGPT-style model itself (meta device, token-id input) and agrees row by row."""
    model, arch = gpt2
    result = verify_spec(arch, model)
    assert result.ok, result.failure_message()
    assert {r.quantity: r.measured for r in result.totals.rows} == {"output_shape": (1024, 50257), "params": 124_439_808,
                                                                     "macs": 145_824_153_600}
    wpe = {r.quantity: r for r in result.rows if r.name == "transformer.wpe"}
    assert wpe["output_shape"].measured == (1024, 768) and "no batch axis" in str(wpe["output_shape"].note)  # wpe(arange(t)): (t, h)


def test_gpt2_imported_with_a_symbolic_length_is_a_polynomial_in_s() -> None:
    arch = imported(on_meta(GPT), ["s"])
    import sympy

    s, h, V, layers = sympy.Symbol("s", integer=True, positive=True), 768, 50257, 12
    for convention in CONVENTIONS:
        got = analyze(arch, convention=convention).totals
        want = analyze(load_spec(SPECS / "gpt2.json"), convention=convention, input_shape=["s"]).totals
        assert {k: sympy.expand(got[k] - want[k]) for k in ("params", "macs", "flops")} == {"params": 0, "macs": 0, "flops": 0}
    macs = analyze(arch, convention="torch").totals["macs"]
    assert sympy.expand(macs - (layers * (12 * s * h**2 + 2 * s**2 * h) + s * h * V)) == 0  # 18432 s^2 + 123532032 s


def test_small_gpt_verifies_on_cpu() -> None:
    """The same on a real (CPU) run of a tiny GPT: the ids are int64, the positions one (t, h) table."""
    model = GPT(TINY)
    result = verify_spec(imported(model, [16]), model)
    assert result.ok, result.failure_message()
    assert result.device == "cpu"
    h, t = 32, 16
    per_layer = 2 * 2 * h + (h * 3 * h + 3 * h) + (h * h + h) + (h * 4 * h + 4 * h) + (4 * h * h + h)
    assert {r.quantity: r.measured for r in result.totals.rows}["params"] == 100 * h + 32 * h + 2 * per_layer + 2 * h
    # (named under the block's attention module: transformer.h.0.attn.scaled_dot_product_attention)
    sdpa = [r.measured for r in result.rows if r.quantity == "macs" and r.name.endswith(".attn.scaled_dot_product_attention")]
    assert sdpa == [2 * 4 * t * t * (h // 4)] * 2  # q k^T and p v: 2 x heads x t x t x d, per layer


def test_verify_compares_sdpa_is_causal() -> None:
    """A spec whose attention is not causal, against nanoGPT's (is_causal=True): torch counts all t x t
    scores either way, so shapes, params and MACs agree; before, it passed verify; is_causal now fails it."""
    model = GPT(TINY)
    spec = spec_from_module(model, [16])
    layers = [{**d, "is_causal": False} if d["type"] == "scaled_dot_product_attention" else d for d in spec["layers"]]
    result = verify_spec(parse_spec({**spec, "layers": layers}), model)
    assert [(r.quantity, r.analytic, r.measured) for r in result.mismatches] == [("is_causal", False, True)] * 2  # both layers
    assert "which keys each query reads" in str(result.first_mismatch.note)  # type: ignore[union-attr]


def test_gpt_without_biases_verifies() -> None:
    """nanoGPT's ``bias=False``: its own LayerNorm (``F.layer_norm(x, self.weight.shape, self.weight, None)``) and bias-free linears."""
    model = GPT(GPTConfig(vocab_size=100, block_size=32, n_layer=2, n_head=4, n_embd=32, bias=False))
    arch = imported(model, [16])
    norms = [layer for layer in arch.layers if layer.kind == "layernorm"]
    assert len(norms) == 2 * 2 + 1 and not any(n.bias for n in norms)  # type: ignore[attr-defined]
    h = 32
    per_layer = 2 * h + h * 3 * h + h * h + h * 4 * h + 4 * h * h  # LayerNorm weights and linear weights only
    assert analyze(arch, convention="torch").totals["params"] == 100 * h + 32 * h + 2 * per_layer + h
    result = verify_spec(arch, model)
    assert result.ok, result.failure_message()


def test_nanogpt_inference_forward_keeps_the_last_position() -> None:
    """nanoGPT's own inference path: ``lm_head(x[:, [-1], :])`` and ``return logits, None``."""
    model = GPTInference(TINY)
    spec = spec_from_module(model, [16])
    assert "only tensor" in spec["description"]
    head, last = spec["layers"][-1], spec["layers"][-2]
    assert last["type"] == "slice" and (last["start"], last["end"]) == (15, 16)  # [-1] of 16 positions, axis kept
    arch = parse_spec(spec)
    assert analyze(arch, convention="torch").rows[-1].macs == 1 * 32 * 100 and head["tie_weight"] == "transformer.wte"
    result = verify_spec(arch, model)
    assert result.ok, result.failure_message()


def test_nanogpt_inference_forward_with_a_symbolic_length() -> None:
    """A prefill of s tokens: the blocks over all s, the head over the last position (x[:, [-1]] is the slice s - 1:)."""
    import sympy

    spec = spec_from_module(on_meta(GPTInference), ["s"])
    assert spec["layers"][-2]["type"] == "slice" and spec["layers"][-2]["start"] == "s - 1"
    s, h, V, layers = sympy.Symbol("s", integer=True, positive=True), 768, 50257, 12
    macs = analyze(parse_spec(spec), convention="torch").totals["macs"]
    assert sympy.expand(macs - (layers * (12 * s * h**2 + 2 * s**2 * h) + 1 * h * V)) == 0


def _tril(n: int) -> torch.Tensor:  # nanoGPT's mask buffer: 1 where query i may see key j <= i
    return torch.tril(torch.ones(n, n)).view(1, 1, n, n)


MASK_BUFFERS = {
    "tril": _tril,
    "banded": lambda n: _tril(n) - torch.tril(torch.ones(n, n), diagonal=-4).view(1, 1, n, n),  # the last 4 keys only (a sliding window)
    "random": lambda n: (torch.rand(1, 1, n, n, generator=torch.Generator().manual_seed(0)) > 0.5).float(),
    "ones": lambda n: torch.ones(1, 1, n, n),  # every key kept: nothing masked
    "triu": lambda n: torch.triu(torch.ones(n, n)).view(1, 1, n, n),  # the future kept, the past hidden
}


class WrittenOutAttention(nn.Module):
    """nanoGPT's attention without flash: ``q @ k^T / sqrt(d)``, softmax, ``@ v``; ``causal``: its mask
    buffer (``mask``: how it is made, :data:`MASK_BUFFERS`) applied with ``masked_fill(... == 0, fill)``."""

    def __init__(self, causal: bool = False, mask: str = "tril", fill: float = float("-inf"), block: int = 16) -> None:
        super().__init__()
        self.c_attn, self.n_head, self.causal, self.fill = nn.Linear(32, 96), 4, causal, fill
        self.register_buffer("bias", MASK_BUFFERS[mask](block))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).chunk(3, dim=-1)
        q, k, v = (t.reshape(B, T, self.n_head, -1).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        if self.causal:
            att = att.masked_fill(self.bias[:, :, :T, :T] == 0, self.fill)
        y = F.softmax(att, dim=-1) @ v
        return y.transpose(1, 2).reshape(B, T, C)


def test_attention_written_out_imports_and_verifies() -> None:
    model = WrittenOutAttention()
    arch = imported(model, [16, 32])
    assert [layer.kind for layer in arch.layers if layer.kind in ("matmul", "scalar", "softmax")] == ["matmul", "scalar", "softmax", "matmul"]
    scale = next(layer for layer in arch.layers if layer.kind == "scalar")
    assert (scale.op, scale.value) == ("mul", 1.0 / math.sqrt(32 // 4))  # type: ignore[attr-defined]
    rows = analyze(arch, convention="torch").rows
    assert [r.macs for r in rows if r.type == "matmul"] == [4 * 16 * 16 * 8] * 2  # heads x T x T x d, twice
    assert verify_spec(arch, model).ok


def test_causal_mask_written_out_imports_and_verifies() -> None:
    """``att.masked_fill(self.bias[:, :, :T, :T] == 0, float('-inf'))``: fx could not trace it (the buffer
    sliced by a traced size: "slice indices must be integers"); the size is the input's 16 during the
    trace, the mask's values are read (True exactly above the diagonal), and it is one causal_mask."""
    model = WrittenOutAttention(causal=True, block=32)  # a buffer for 32 positions, sliced to the input's 16
    arch = imported(model, [16, 32])
    kinds = [layer.kind for layer in arch.layers if layer.kind in ("matmul", "scalar", "causal_mask", "softmax")]
    assert kinds == ["matmul", "scalar", "causal_mask", "softmax", "matmul"]
    heads, t, d = 4, 16, 32 // 4
    for convention in (*CONVENTIONS, "kaplan", "fvcore"):
        rows = [r for r in analyze(arch, convention=convention).rows if r.type == "causal_mask"]
        assert [(r.output_shape, r.params, r.macs, r.ops) for r in rows] == [((heads, t, t), 0, 0, {"mask": heads * t * t})]  # one select per score
    # the products around the mask, as sdpa's with is_causal: torch (and fvcore, lecture) count all t x t scores,
    # kaplan the kept triangle only, t (t + 1) / 2 = 136 (query, key) pairs of the 256
    assert [layer.causal for layer in arch.layers if layer.kind == "matmul"] == ["scores", "weights"]  # type: ignore[attr-defined]
    for convention, pairs in (("torch", t * t), ("fvcore", t * t), ("lecture", t * t), ("kaplan", t * (t + 1) // 2)):
        assert [r.macs for r in analyze(arch, convention=convention).rows if r.type == "matmul"] == [heads * pairs * d] * 2
    assert not [k for k in vars(model) if k.startswith("_tensor_constant")]  # the trace's constant (the sliced mask) is not left on the model
    result = verify_spec(arch, model)
    assert result.ok, result.failure_message()
    checked = {r.quantity: r.measured for r in result.rows if r.name == "masked_fill"}
    assert checked == {"output_shape": (heads, t, t), "params": 0, "macs": 0}  # torch's FlopCounterMode: no formula for masked_fill


@pytest.mark.parametrize(("model", "why"), [
    (WrittenOutAttention(causal=True, mask="banded"), "it is not causal: it hides key 0 for query 4 (78 of 256 places differ"),
    (WrittenOutAttention(causal=True, mask="random"), "it is not causal"),
    (WrittenOutAttention(causal=True, mask="ones"), "it is not causal: it keeps key 1 for query 0 (120 of 256"),  # 16 * 15 / 2 future keys
    (WrittenOutAttention(causal=True, mask="triu"), "it is not causal: it keeps key 1 for query 0"),
    (WrittenOutAttention(causal=True, fill=-1e9), "masked_fill with the constant -1000000000.0: archcalc reads a causal mask filled with"),
    (on_meta(WrittenOutAttention, True), "it is on the meta device, which holds no values"),
], ids=["banded", "random", "nothing-masked", "future-kept", "fill-not-inf", "meta"])
def test_a_mask_that_is_not_causal_is_refused(model: nn.Module, why: str) -> None:
    """Never imported as causal: a sliding-window band (the last 4 keys: query i >= 4 hides its i - 3 oldest,
    1 + 2 + ... + 12 = 78 hidden past keys), a random mask, nothing masked, the past hidden, another fill
    value, no values to read."""
    with pytest.raises(SpecError, match=r"^node 'masked_fill' \(call_method Tensor\.masked_fill\) has no archcalc layer type: ") as e:
        spec_from_module(model, [16, 32])
    assert why in e.value.message and "\n" not in str(e.value)


def test_verify_fails_a_causal_mask_the_model_does_not_apply() -> None:
    """The spec (imported from the causal model) against a model whose buffer is a band: shapes,
    params and MACs all agree, the mask does not, and that row fails (no false pass)."""
    arch = imported(WrittenOutAttention(causal=True), [16, 32])
    result = verify_spec(arch, WrittenOutAttention(causal=True, mask="banded"))
    assert not result.ok
    first = result.first_mismatch
    assert first is not None and (first.name, first.quantity, first.analytic) == ("masked_fill", "mask", "causal")
    assert str(first.measured).startswith("it is not causal: it hides key 0 for query 4")
    assert [r.quantity for r in result.mismatches] == ["mask"]  # the counts agree: only the mask tells them apart
    fill = verify_spec(arch, WrittenOutAttention(causal=True, fill=-1e4))
    assert [(r.quantity, r.analytic, r.measured) for r in fill.mismatches] == [("value", "-inf", "-10000.0")]


def test_nanogpt_without_flash_imports_and_verifies() -> None:
    """nanoGPT with ``flash=False`` (its attention written out, the mask buffer sliced to t): the
    same parameters and MACs as with sdpa under every convention that counts attention ('kaplan' too:
    the kept triangle of each)."""
    slow, fast = GPT(GPTConfig(**{**TINY.__dict__, "flash": False})), GPT(TINY)
    arch, sdpa_arch = imported(slow, [16]), imported(fast, [16])
    kinds = [layer.kind for layer in arch.layers]
    assert kinds.count("causal_mask") == 2 and "scaled_dot_product_attention" not in kinds
    h, t, heads, layers = 32, 16, 4, 2
    for convention in (*CONVENTIONS, "kaplan"):  # sdpa's 2 products = the two matmuls written out (not fvcore: it counts 0 for sdpa)
        got, want = analyze(arch, convention=convention).totals, analyze(sdpa_arch, convention=convention).totals
        assert (got["params"], got["macs"]) == (want["params"], want["macs"])
    per_layer = 2 * heads * t * t * (h // heads)  # q k^T and att v: heads x t x t x d each
    matmuls = [r.macs for r in analyze(arch, convention="torch").rows if r.type == "matmul"]
    assert sum(matmuls) == layers * per_layer == layers * 2 * t * t * h
    result = verify_spec(arch, slow)
    assert result.ok, result.failure_message()
    assert {r.quantity: r.measured for r in result.totals.rows}["macs"] == analyze(sdpa_arch, convention="torch").totals["macs"]


def test_gpt2_without_flash_has_the_published_counts() -> None:
    """GPT-2 small written out (weights on the meta device; the 12 mask buffers real, 1024 x 1024, so that
    import can read them): nanoGPT's counts of the sdpa version, under 'kaplan' too (Kaplan et al. 2020,
    Table 1: attention over the causal triangle, s(s + 1)/2 (query, key) pairs, 2 h MACs each, per layer)."""
    model = on_meta(GPT, GPTConfig(flash=False))
    for block in model.transformer.h:
        block.attn.bias = _tril(1024)  # (1, 1, 1024, 1024) on the CPU
    arch = imported(model, [1024])
    h, s, V, layers = 768, 1024, 50257, 12
    totals = analyze(arch, convention="torch").totals
    assert totals["params"] == 124_439_808 and totals["macs"] == layers * (12 * s * h**2 + 2 * s**2 * h) + s * h * V == 145_824_153_600
    kaplan, sdpa_kaplan = (analyze(a, convention="kaplan").totals["macs"] for a in (arch, imported(on_meta(GPT), [1024])))
    assert kaplan == sdpa_kaplan == layers * (12 * s * h**2 + s * (s + 1) // 2 * 2 * h) + s * h * V


def test_nanogpt_without_flash_needs_numbers_and_values() -> None:
    """A symbolic length cannot slice the buffer, and a meta buffer has no values to check: one line each."""
    cfg = GPTConfig(**{**TINY.__dict__, "flash": False})
    with pytest.raises(SpecError, match=r"^field 'factory': torch\.fx cannot trace GPT: the model \(in 'transformer\.h\.0\.attn'\) uses "
                       r"'getitem_3' as a Python int \(to index, slice or count\), but it is s for this input \(give the sizes numbers\)$"):
        spec_from_module(GPT(cfg), ["s"])
    with pytest.raises(SpecError, match=r"^node 'masked_fill' .*: masked_fill by a mask computed from a buffer in 'transformer\.h\.0\.attn': "
                       r"it is on the meta device"):
        spec_from_module(on_meta(GPT, cfg), [16])


def test_cli_imports_and_verifies_nanogpt_written_out(tmp_path: Path) -> None:
    out = tmp_path / "slow.json"
    r = cli("import", "lm_models:nanogpt_written_out", "--input", "16", "-o", str(out))
    assert r.code == 0, r.err
    assert sum(json.loads(line.rstrip(",")).get("type") == "causal_mask" for line in out.read_text().splitlines() if line.startswith("    {")) == 2
    r = cli("verify", str(out), "--module", "lm_models:nanogpt_written_out")
    assert r.code == 0, r.out + r.err


def test_cli_refuses_a_mask_that_is_not_causal(tmp_path: Path) -> None:
    out = tmp_path / "banded.json"
    r = cli("import", "lm_models:nanogpt_banded", "--input", "16", "-o", str(out))
    assert r.code == 2 and not out.exists()
    assert r.err.count("\n") == 1 and "node 'masked_fill'" in r.err and "in 'transformer.h.0.attn': it is not causal" in r.err


# ----- LLaMA layout: RMSNorm, SwiGLU, no biases, grouped-query attention -----------------------------------
def test_llama_with_grouped_query_attention_imports_and_verifies() -> None:
    cfg = LlamaConfig(vocab_size=100, n_layer=2, n_head=4, n_kv_head=2, dim=32, hidden=64)
    model = Llama(cfg)
    arch = imported(model, [16])
    kinds = [layer.kind for layer in arch.layers]
    assert kinds.count("rmsnorm") == 2 * 2 + 1 and kinds.count("silu") == 2 and kinds.count("mul") == 2
    sdpa = [layer for layer in arch.layers if layer.kind == "scaled_dot_product_attention"]
    assert all(layer.enable_gqa and layer.is_causal for layer in sdpa)  # type: ignore[attr-defined]
    rows = {r.name: r for r in analyze(arch, convention="torch").rows}
    t, d = 16, 32 // 4
    assert rows["layers.0.attention.wk"].params == 32 * 2 * d  # 2 key/value heads of 8, no bias
    assert rows[sdpa[0].name].macs == 2 * 4 * t * t * d  # k and v's 2 heads repeated to q's 4
    result = verify_spec(arch, model)
    assert result.ok, result.failure_message()


def test_llama2_7b_layout_imports_to_the_published_count() -> None:
    """LLaMA-2 7B's sizes, on the meta device: the rotary embeddings written inline are read as the
    zoo's ``rotary`` layers (base 10000 from the module's ``base``: a meta buffer has no values)."""
    arch = imported(on_meta(Llama), [4096])
    h, ffn, V, layers = 4096, 11008, 32000, 32
    per_layer = 2 * h + 4 * h * h + 3 * h * ffn  # two RMSNorm weights, q/k/v/o, gate/up/down
    got = analyze(arch, convention="torch").totals
    assert got["params"] == V * h + layers * per_layer + h + h * V == 6_738_415_616  # embedding, blocks, final norm, untied head
    want = analyze(load_spec(SPECS / "llama2_7b.json"), convention="torch").totals
    assert (got["params"], got["macs"]) == (want["params"], want["macs"])
    zoo = load_spec(SPECS / "llama2_7b.json")
    assert [layer.kind for layer in arch.layers].count("rotary") == 2 * layers  # q and k of every layer
    for convention in CONVENTIONS:  # layer for layer, the rotary rows included
        assert counted(arch, convention) == counted(zoo, convention)


# ----- refusals: one line naming the node and the op ---------------------------------------------------------
class Attend(nn.Module):
    """q of 4 heads against k, v of 2 heads, with a given ``enable_gqa``."""

    def __init__(self, gqa: bool) -> None:
        super().__init__()
        self.gqa = gqa

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = x.view(x.size(0), 4, 16, 8)
        kv = q[:, :2]
        return F.scaled_dot_product_attention(q, kv, kv, enable_gqa=self.gqa)


class Positions(nn.Module):
    def __init__(self, start: int = 0, use_as_tensor: bool = False) -> None:
        super().__init__()
        self.wpe = nn.Embedding(32, 8)
        self.start, self.use_as_tensor = start, use_as_tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(self.start, x.size(1), device=x.device)
        return x + pos if self.use_as_tensor else x + self.wpe(pos)


class Asserting(GPT):
    """nanoGPT checks the length with a Python ``assert`` on a traced size (plain fx refuses that)."""

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        _, t = idx.size()
        assert t <= self.config.block_size, f"Cannot forward sequence of length {t}"
        return super().forward(idx)


class Branching(nn.Module):
    """A Python ``if`` on a size or on tensor values: traced as true, so it must be true for the input."""

    def __init__(self, on_values: bool = False) -> None:
        super().__init__()
        self.on_values = on_values

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x * 2 > 0) if self.on_values else (x.size(1) > 100):
            return torch.relu(x)
        return x


def test_a_python_assert_on_sizes_is_checked_not_refused() -> None:
    """nanoGPT's ``assert t <= block_size`` traces (as true) and holds for 16 positions: the same spec as without it."""
    checked, plain = imported(Asserting(TINY), [16]), imported(GPT(TINY), [16])
    for convention in CONVENTIONS:
        assert counted(checked, convention) == counted(plain, convention)
    assert [layer.kind for layer in checked.layers] == [layer.kind for layer in plain.layers]
    with pytest.raises(SpecError, match=r"^node 'le' .*: the model tests it in Python \(an assert or if\), but it is the constant s <= 32 "
                       r"for this input, neither true nor false"):
        spec_from_module(Asserting(TINY), ["s"])  # undecided for a symbolic length: refused, not assumed


def test_a_python_if_on_sizes_follows_the_input() -> None:
    """``if x.size(1) > 100`` is traced one way, computed for the input, and traced again the other way if it went wrong."""
    assert types_of(Branching(), (16, 8)) == ["identity"]  # 16 > 100 is false: x itself
    assert types_of(Branching(), (160, 8)) == ["relu"]


@pytest.mark.parametrize(
    ("model", "shape", "pattern"),
    [
        (Attend(gqa=False), (4 * 16 * 8,), r"^node 'scaled_dot_product_attention' \(call_function torch\._C\._nn\.scaled_dot_product_attention\)"
         r" has no archcalc layer type: q has 4 heads and k 2: grouped-query attention needs enable_gqa=True"),
        (Positions(start=1), (16, 8), r"^node 'arange' \(call_function torch\.arange\) has no archcalc layer type: arange\(1, 16, 1\): "
         r"only the positions"),
        (Positions(use_as_tensor=True), (16, 8), r"^node 'add' .*: add of a tensor and the positions torch\.arange\(0, 16\)$"),
        (Branching(on_values=True), (16, 8), r"^node 'gt' .* has no archcalc layer type: arithmetic on tensors"),
    ],
    ids=["heads_without_gqa", "arange_from_1", "positions_as_tensor", "if_on_values"],
)
def test_refusals_are_one_line(model: nn.Module, shape: tuple[int, ...], pattern: str) -> None:
    with pytest.raises(SpecError, match=pattern) as e:
        spec_from_module(model, shape)
    assert "\n" not in str(e.value)


def test_gqa_with_matching_head_ratio_imports() -> None:
    rows = analyze(imported(Attend(gqa=True), (4 * 16 * 8,)), convention="torch").rows
    assert rows[-1].type == "scaled_dot_product_attention" and rows[-1].macs == 2 * 4 * 16 * 16 * 8


# ----- the CLI ----------------------------------------------------------------------------------------------
def test_cli_imports_and_verifies_a_nanogpt_style_model(tmp_path: Path) -> None:
    out = tmp_path / "gpt2.json"
    r = cli("import", "lm_models:gpt2_small", "--input", "1024", "-o", str(out), "--name", "gpt2_nanogpt")
    assert r.code == 0, r.err
    r = cli("verify", str(out), "--module", "lm_models:gpt2_small")
    assert r.code == 0, r.out + r.err
    assert "124,439,808" in r.out and "145,824,153,600" in r.out


# ----- rotary embeddings written inline (archcalc.torch.idioms) ---------------------------------------------
def _halves_cat(x: torch.Tensor) -> torch.Tensor:  # Hugging Face's rotate_half
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


def _chunk_cat(x: torch.Tensor) -> torch.Tensor:  # the same by chunk (GPT-NeoX style)
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def _wrong_half(x: torch.Tensor) -> torch.Tensor:  # not a rotation: the negated half on the wrong side
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2 :]
    return torch.cat((x1, -x2), dim=-1)


class RopeAttention(nn.Module):
    """One attention with rotary q and k, as LLaMA-family code writes it; ``freqs``: how the
    frequencies are held ("buffer", "inline" in forward, "scaled": a buffer of YaRN-like ramped ones)."""

    def __init__(self, d: int = 32, heads: int = 4, base: int = 10000, freqs: str = "buffer", rotate: Any = _halves_cat) -> None:
        super().__init__()
        self.heads, self.dh, self.base, self.freqs, self.rotate = heads, d // heads, base, freqs, rotate
        self.emb = nn.Embedding(50, d)
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.out = nn.Linear(d, d, bias=False)
        inv_freq = 1.0 / (base ** (torch.arange(0, self.dh, 2).float() / self.dh))
        if freqs == "scaled":
            inv_freq = inv_freq * torch.linspace(1.0, 0.25, self.dh // 2)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.emb(idx)
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)
        q = q.view(b, t, self.heads, self.dh).transpose(1, 2)
        k = k.view(b, t, self.heads, self.dh).transpose(1, 2)
        v = v.view(b, t, self.heads, self.dh).transpose(1, 2)
        inline = self.freqs == "inline"
        inv_freq = 1.0 / (self.base ** (torch.arange(0, self.dh, 2, device=x.device).float() / self.dh)) if inline else self.inv_freq
        pos = torch.arange(t, device=x.device, dtype=torch.float32)
        angles = torch.outer(pos, inv_freq)
        emb = torch.cat((angles, angles), dim=-1)
        cos, sin = emb.cos()[None, None], emb.sin()[None, None]
        q = q * cos + self.rotate(q) * sin
        k = self.rotate(k) * sin + k * cos  # (the terms either way round)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return x + self.out(y.transpose(1, 2).reshape(b, t, c))


@pytest.mark.parametrize(("freqs", "rotate", "base"), [("buffer", _halves_cat, 10000), ("inline", _halves_cat, 10000),
                                                       ("buffer", _chunk_cat, 500000)], ids=["buffer", "inline", "chunk-theta500k"])
def test_inline_rotary_imports_as_one_layer_and_verifies(freqs: str, rotate: Any, base: int) -> None:
    """q * cos + rotate_half(q) * sin is one ``rotary`` layer, its base read from the frequencies
    (a buffer's values, or ``base ** (arange(0, d, 2) / d)`` in forward; LLaMA 3's rope_theta is
    500,000): the spec builds extra_modules.Rotary, and torch measures the user's model equal."""
    model = RopeAttention(base=base, freqs=freqs, rotate=rotate)
    arch = imported(model, [16])
    rot = [layer for layer in arch.layers if layer.kind == "rotary"]
    assert len(rot) == 2 and all(layer.base == base for layer in rot)  # type: ignore[attr-defined]
    kinds = {layer.kind for layer in arch.layers}
    assert not kinds & {"concat", "mul", "scalar", "parameter"}  # nothing of the pattern is left as its own layer
    sdpa = next(layer for layer in arch.layers if layer.kind == "scaled_dot_product_attention")
    assert sdpa.inputs[:2] == [rot[0].name, rot[1].name]
    rows = {r.name: r for r in analyze(arch).rows}
    assert rows[rot[0].name].output_shape == (4, 16, 8)  # heads, positions, head size
    assert rows[rot[0].name].ops == {"rotary": 4 * 16 * 8}  # one rotation per element of q
    result = verify_spec(arch, model)
    assert result.ok, result.failure_message()


@pytest.mark.parametrize(("model", "why"), [
    (RopeAttention(freqs="scaled"), "scaled or interpolated positions?"),
    (RopeAttention(rotate=_wrong_half), "operator.neg"),
], ids=["scaled-frequencies", "not-a-rotation"])
def test_inline_rotary_variants_it_cannot_read_are_refused(model: nn.Module, why: str) -> None:
    """Frequencies that are not base^(-2i/d) (YaRN-like ramps) are refused with the reason, not read
    as a standard rotary; a sum that is no rotation is not matched at all (its calls are refused)."""
    with pytest.raises(SpecError) as e:
        imported(model, [16])
    assert why in e.value.message


def test_inline_rotary_on_the_meta_device_needs_its_base() -> None:
    """A meta buffer has no values: the base comes from the owning module's ``base`` / ``rope_theta``,
    else a one-line refusal that says how to give it."""
    model = on_meta(RopeAttention)
    assert all(layer.base == 10000 for layer in imported(model, [16]).layers if layer.kind == "rotary")  # type: ignore[attr-defined]
    del model.base
    with pytest.raises(SpecError) as e:
        imported(model, [16])
    assert "meta device" in e.value.message and "rope_theta" in e.value.message


class ForwardFrequencies(RopeAttention):
    """Frequencies written in forward in forms that are not 1 / base ** (arange(0, d, 2) / d)."""

    def __init__(self, form: str) -> None:
        super().__init__(freqs="inline")
        self.form = form

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.emb(idx)
        b, t, c = x.shape
        q, _, v = self.qkv(x).split(c, dim=2)
        q = q.view(b, t, self.heads, self.dh).transpose(1, 2)
        v = v.view(b, t, self.heads, self.dh).transpose(1, 2)
        steps = torch.arange(0, self.dh, 2, device=x.device).float()
        # scaled: / 8 after the inverse (linear-scaled frequencies); else a wider denominator,
        # base ** (2i / 4d): in effect the base 10000 ** (1/4) = 10
        scaled = self.form == "scaled"
        inv_freq = 1.0 / (self.base ** (steps / self.dh)) / 8 if scaled else 1.0 / (self.base ** (steps / (4 * self.dh)))
        angles = torch.outer(torch.arange(t, device=x.device, dtype=torch.float32), inv_freq)
        emb = torch.cat((angles, angles), dim=-1)
        q = q * emb.cos() + _halves_cat(q) * emb.sin()
        y = F.scaled_dot_product_attention(q, q, v, is_causal=True)
        return x + self.out(y.transpose(1, 2).reshape(b, t, c))


@pytest.mark.parametrize("form", ["scaled", "wider-denominator"])
def test_frequencies_in_forward_are_read_only_in_their_exact_form(form: str) -> None:
    """Both imported as base 10000 before (review s6b #5): the base was the first power's constant."""
    with pytest.raises(SpecError) as e:
        imported(ForwardFrequencies(form), [16])
    assert "in a form other than 1 / base ** (arange(0, d, 2) / d)" in e.value.message


class RopeWrittenOut(nn.Module):
    """Rotary q and k (LLaMA's rotary module and rotate_half), then attention written out with a causal mask buffer."""

    def __init__(self, d: int = 32, heads: int = 4, block: int = 32) -> None:
        super().__init__()
        self.heads, self.dh = heads, d // heads
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.rotary_emb = RotaryEmbedding(self.dh)
        self.register_buffer("bias", _tril(block))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.size()
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.heads, self.dh).transpose(1, 2) for t in (q, k, v))
        cos, sin = self.rotary_emb(q)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
        return x + (F.softmax(att, dim=-1) @ v).transpose(1, 2).contiguous().view(B, T, C)


def test_rotary_before_a_written_out_causal_mask_in_every_layer() -> None:
    """The second layer's T (sliced into its mask buffer during the trace) follows the first layer's
    inline rotary embedding, which is a dozen refused calls until the idioms are replaced: the size is
    read on the graph so far with them replaced (before: refused at the first layer's rotary arange)."""
    model = nn.Sequential(nn.Embedding(100, 32), RopeWrittenOut(), RopeWrittenOut())
    arch = imported(model, [16])
    kinds = [layer.kind for layer in arch.layers]
    assert kinds.count("rotary") == 2 * 2 and kinds.count("causal_mask") == 2
    result = verify_spec(arch, model)
    assert result.ok, result.failure_message()
    assert [r.measured for r in result.rows if r.quantity == "base"] == [10000] * 4


# ----- verify compares a rotary layer's base (no count depends on it) ---------------------------------------
def _with_bases(spec: dict[str, Any], *bases: int) -> Architecture:
    """``spec`` with its rotary layers' bases set, in order (a hand-edited spec: the wrong theta)."""
    layers = [dict(d) for d in spec["layers"]]
    rotary = [d for d in layers if d["type"] == "rotary"]
    for d, base in zip(rotary, bases, strict=True):
        d["base"] = base
    return parse_spec({**spec, "layers": layers})


def _base_rows(result: Any) -> list[tuple[str, Any, Any, bool]]:
    return [(r.name, r.analytic, r.measured, r.ok) for r in result.rows if r.quantity == "base"]


@pytest.mark.parametrize("base", [10000, 500000], ids=["llama2", "llama3"])
def test_verify_compares_the_rotary_base_with_the_models_frequencies(base: int) -> None:
    """LLaMA-2's theta is 10,000, LLaMA-3's 500,000 (Meta's model cards; Hugging Face's rope_theta):
    shapes, params and MACs are the same either way, so before, a spec with the other base passed
    verify.  Now the base is read from the model's inv_freq buffer and compared, row by row."""
    model = RopeAttention(base=base)
    spec = spec_from_module(model, [16])
    result = verify_spec(parse_spec(spec), model)
    assert result.ok, result.failure_message()
    assert _base_rows(result) == [("rotary_embedding", base, base, True), ("rotary_embedding_1", base, base, True)]  # q's and k's
    other = 510000 - base  # the other model's theta
    wrong = verify_spec(_with_bases(spec, base, other), model)
    assert not wrong.ok and _base_rows(wrong) == [("rotary_embedding", base, base, True), ("rotary_embedding_1", other, base, False)]
    first = wrong.first_mismatch
    assert first is not None and first.quantity == "base" and "rotary's base differs" in str(first.note)
    assert [r.quantity for r in wrong.mismatches] == ["base"]  # nothing else tells the two apart


def test_verify_reads_a_llama_rotary_module_and_a_meta_model_by_its_attribute() -> None:
    """The LLaMA layout's rotary module (one per layer, its inv_freq buffer, ``base``): every rotary
    layer compared with its frequencies; on the meta device (no values) with its ``base``, and
    without that attribute the row fails saying why (never a pass on a base nobody read)."""
    cfg = LlamaConfig(vocab_size=100, n_layer=2, n_head=4, n_kv_head=2, dim=32, hidden=64)
    model = Llama(cfg)
    spec = spec_from_module(model, [16])
    result = verify_spec(parse_spec(spec), model)
    assert result.ok, result.failure_message()
    assert [(a, m) for _, a, m, _ in _base_rows(result)] == [(10000, 10000)] * 2 * 2  # q and k of 2 layers
    assert not verify_spec(_with_bases(spec, 10000, 10000, 10000, 500000), model).ok
    meta = on_meta(RopeAttention)
    assert verify_spec(imported(RopeAttention(), [16]), meta).ok  # base 10000 from meta.base
    del meta.base
    unread = verify_spec(imported(RopeAttention(), [16]), meta)
    assert not unread.ok and {r.quantity for r in unread.mismatches} == {"base"}
    assert "on the meta device (no values) and it has no base / rope_theta / theta attribute" in str(unread.first_mismatch.measured)  # type: ignore[union-attr]


def test_verify_compares_the_base_of_archcalcs_rotary_module() -> None:
    """A model holding archcalc's own Rotary module (the one a spec builds): matched as a module, its base compared too."""
    from archcalc.torch.extra_modules import Rotary

    def spec(base: int) -> dict[str, Any]:
        return {"name": "rope", "input": [4, 16, 8], "layers": [{"name": "rope", "type": "rotary", "base": base}]}

    model = nn.Sequential(Rotary(500000))
    assert verify_spec(spec(500000), model).ok
    wrong = verify_spec(spec(10000), model)
    assert [(r.quantity, r.analytic, r.measured) for r in wrong.mismatches] == [("base", 10000, 500000)]
