"""A convolution's ``padding_mode``: 'zeros' pads inside the convolution; 'reflect', 'replicate' and
'circular' make a padded copy of the input first (torch.nn.Conv2d's forward, ``_ConvNd``:
``F.conv2d(F.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode), weight,
bias, stride, 0, dilation, groups)``).  Same shapes, parameters and MACs; the copy is a tensor of
its own, which the convolution's backward keeps in place of its input.  Reflection and replication
padding's backward also keep their input (derivatives.yaml: ``reflection_pad2d_backward(grad,
self, padding)``), where it requires grad; circular padding (narrow and copy_) keeps nothing.

Review s7 #11: ``Conv2d(3, 8, 3, padding=1, padding_mode="reflect")`` then ``Conv2d(8, 4, 3)`` on
3x8x8, batch 1: autograd keeps 3,248 B, archcalc memory said 2,816.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from archcalc.graph import compile_graph
from archcalc.spec import parse_spec
from archcalc.training import training_memory, training_memory_from_graph
from tests.conftest import cli

MODES = ["zeros", "reflect", "replicate", "circular"]


def _write(tmp_path: Path, spec: dict[str, Any]) -> str:
    path = tmp_path / f"{spec['name']}.json"
    path.write_text(json.dumps(spec))
    return str(path)


def _review(mode: str) -> dict[str, Any]:
    return {"name": "review", "input": [3, 8, 8], "layers": [
        {"name": "c0", "type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1, "padding_mode": mode},
        {"name": "c1", "type": "conv2d", "out_channels": 4, "kernel_size": 3},
    ]}  # fmt: skip


def _after_conv(mode: str, relu: bool, padding: Any = 1) -> dict[str, Any]:
    """The padded conv's input requires grad (a conv made it): reflect and replicate keep it too."""
    return {"name": "after", "input": [3, 8, 8], "layers": [
        {"name": "c0", "type": "conv2d", "out_channels": 8, "kernel_size": 3},
        *([{"name": "r", "type": "relu"}] if relu else []),
        {"name": "c1", "type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": padding, "padding_mode": mode},
    ]}  # fmt: skip


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        # c0 keeps the network input, 3*8*8 fp32; c1 keeps c0's output, 8*8*8 fp32
        ("zeros", 3 * 8 * 8 * 4 + 8 * 8 * 8 * 4),  # 2,816
        # c0 keeps the padded copy, 3*10*10, instead of the input (which requires no grad: F.pad keeps nothing)
        ("reflect", 3 * 10 * 10 * 4 + 8 * 8 * 8 * 4),  # 3,248, as autograd measured in the review
        ("replicate", 3 * 10 * 10 * 4 + 8 * 8 * 8 * 4),
        ("circular", 3 * 10 * 10 * 4 + 8 * 8 * 8 * 4),
    ],
)
def test_the_reviews_network_keeps_the_padded_copy(mode: str, expected: int) -> None:
    m = training_memory(_review(mode), batch=1)
    assert m.totals["saved_bytes"] == expected
    assert [s.saved.tensor for s in m.rows[0].saved or []] == (["input"] if mode == "zeros" else
                                                                ["padded copy of the input"])


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        # c0 keeps the input 3*8*8; the ReLU its output 8*6*6; c1 that output too (counted once)
        ("zeros", 2 * (3 * 8 * 8 + 8 * 6 * 6) * 4),
        # ... c1 keeps the padded copy 8*8*8 instead; reflection padding's backward keeps the ReLU's output (counted once)
        ("reflect", 2 * (3 * 8 * 8 + 8 * 6 * 6 + 8 * 8 * 8) * 4),
        ("replicate", 2 * (3 * 8 * 8 + 8 * 6 * 6 + 8 * 8 * 8) * 4),
        ("circular", 2 * (3 * 8 * 8 + 8 * 6 * 6 + 8 * 8 * 8) * 4),
    ],
)
def test_a_padded_conv_after_a_relu(mode: str, expected: int) -> None:
    assert training_memory(_after_conv(mode, relu=True), batch=2).totals["saved_bytes"] == expected


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("zeros", 2 * (3 * 8 * 8 + 8 * 6 * 6) * 4),  # c1 keeps c0's output
        # padding (1, 2): the copy is 8 x (6+2) x (6+4); reflection padding keeps c0's output, which nothing else keeps
        ("reflect", 2 * (3 * 8 * 8 + 8 * 6 * 6 + 8 * 8 * 10) * 4),
        ("replicate", 2 * (3 * 8 * 8 + 8 * 6 * 6 + 8 * 8 * 10) * 4),
        ("circular", 2 * (3 * 8 * 8 + 8 * 8 * 10) * 4),  # circular padding keeps nothing: c0's output is freed
    ],
)
def test_reflection_keeps_its_input_and_circular_does_not(mode: str, expected: int) -> None:
    assert training_memory(_after_conv(mode, relu=False, padding=[1, 2]), batch=2).totals["saved_bytes"] == expected


def test_symbolic_sizes_and_batch() -> None:
    spec = _after_conv("reflect", relu=False)
    spec["input"] = [3, "H", "W"]
    from archcalc.dims import symbol

    H, W, N = symbol("H"), symbol("W"), symbol("N")
    m = training_memory(spec, batch=N)
    import sympy

    # c0 keeps the input, reflection padding c0's output 8(H-2)(W-2), c1 the copy 8 H W
    assert sympy.expand(m.totals["saved_bytes"] - N * 4 * (3 * H * W + 8 * (H - 2) * (W - 2) + 8 * H * W)) == 0


NETS = [spec for mode in MODES[1:] for spec in (_review(mode), _after_conv(mode, True), _after_conv(mode, False, [1, 2]))]


@pytest.mark.torch
@pytest.mark.parametrize("amp", [False, True], ids=["fp32", "bf16_autocast"])
@pytest.mark.parametrize("spec", NETS, ids=[f"{n['name']}_{n['layers'][-1 if n['name'] == 'after' else 0]['padding_mode']}_{len(n['layers'])}"
                                            for n in NETS])
def test_equals_autograd_layer_by_layer(spec: dict[str, Any], amp: bool) -> None:
    torch = pytest.importorskip("torch")
    from archcalc.torch.build import build_module
    from archcalc.torch.saved import measure_saved

    G = compile_graph(parse_spec(spec))
    m = training_memory_from_graph(G, batch=2, dtype="bfloat16" if amp else "float32", amp=amp)
    model = build_module(G)
    torch.manual_seed(0)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        measured = measure_saved(model, torch.randn(2, 3, 8, 8))
    got = {r.name: measured.per_module.get("layers." + model.keys[r.name], 0) for r in m.rows}
    assert got == {r.name: r.saved_bytes for r in m.rows}


@pytest.mark.torch
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("mode", MODES[1:])
def test_the_peak_grows_by_what_torch_allocates_more(mode: str, relu: bool) -> None:
    # the padded copy lives from the forward to c1's backward, whose input gradient is the padded
    # copy's (then cropped by the padding's backward); oneDNN copies the padded input, not the input.
    # The walk's rule for oneDNN's copies bounds them (tests/test_training_peak.py), so the check is
    # on the difference each mode makes against zeros, which must be torch's to the byte
    torch = pytest.importorskip("torch")
    from archcalc.torch.build import build_module
    from archcalc.torch.peak import measure_peak

    def both(m: str) -> tuple[int, Any]:
        spec = _after_conv(m, relu, [1, 2])
        spec["layers"] = [{**layer, "out_channels": 32} if layer["type"] == "conv2d" else layer for layer in spec["layers"]]
        spec["input"] = [3, 16, 16]
        G = compile_graph(parse_spec(spec))
        model = build_module(G)
        torch.manual_seed(0)
        return measure_peak(model, torch.randn(2, 3, 16, 16)).peak, training_memory_from_graph(G, batch=2).totals["peak_bytes"]

    (t0, a0), (t1, a1) = both("zeros"), both(mode)
    assert a1 - a0 == t1 - t0, (t1 - t0, a1 - a0)


def test_the_first_conv_on_the_input_peaks_with_its_copy_alive() -> None:
    # the review's network at batch 2: the padded copy 2*3*10*10 fp32 is alive at the peak (c1's
    # backward) where zeros padding keeps only the input, which the caller holds anyway
    zeros, reflect = (training_memory(_review(m), batch=2, cpu_threads=1) for m in ("zeros", "reflect"))

    def c1_backward(m: Any) -> int:  # c1's largest moment (its backward), at batch 2
        return max(f + p * 2 for f, p, where in m.moment_lines if where == "c1")

    assert c1_backward(reflect) - c1_backward(zeros) == 2 * 3 * 10 * 10 * 4  # measured with torch.profiler: 54,352 - 51,952 = 2,400
    # review s10 #6: c0's backward now counts oneDNN's blocked copy of the (padded) input its weight's gradient reads, and
    # with reflect padding is the larger moment: the peak is c0's (38,080; measured 36,480 on 1 thread), zeros' c1's (34,736)
    assert reflect.totals["peak_bytes"] == 38_080 > c1_backward(reflect) and zeros.totals["peak_bytes"] == c1_backward(zeros) == 34_736


def test_inference_memory_counts_outputs_and_the_row_names_the_copy(tmp_path: Path) -> None:
    # eval mode: F.pad's copy is freed once the convolution has run; the column counts each output
    # (DESIGN.md, 'lecture': memory = output elements x dtype bytes), so the row says what it leaves out
    doc = json.loads(cli("table", _write(tmp_path, _review("reflect")), "--format", "json").out)
    assert doc["layers"][0]["activation_bytes"] == 8 * 8 * 8 * 4
    assert "3×10×10 per sample" in doc["layers"][0]["note"] and "not in this row's memory" in doc["layers"][0]["note"]
    zeros = json.loads(cli("table", _write(tmp_path, _review("zeros")), "--format", "json").out)
    assert zeros["layers"][0].get("note") is None


@pytest.mark.parametrize(
    ("mode", "padding", "ok"),
    [("reflect", 7, True), ("reflect", 8, False), ("circular", 8, True), ("circular", 9, False), ("replicate", 9, True)],
)
def test_f_pads_limits_are_refused_in_one_line(mode: str, padding: int, ok: bool, tmp_path: Path) -> None:
    # torch: reflection padding must be shorter than the axis, circular at most the axis (checked
    # with torch 2.14: Conv2d(3, 4, 3, padding=8, padding_mode='reflect') on 8x8 raises)
    spec = _review(mode)
    spec["layers"][0]["padding"] = padding
    r = cli("table", _write(tmp_path, spec))
    if ok:
        assert r.code == 0
    else:
        assert r.code == 2 and r.err.count("\n") == 1
        assert "layer 'c0': field 'padding'" in r.err and f"padding_mode={mode!r} pads {padding}" in r.err


@pytest.mark.torch
@pytest.mark.parametrize("mode", MODES[1:])
def test_import_writes_the_mode_and_verify_compares_it(mode: str) -> None:
    pytest.importorskip("torch")
    from torch import nn

    from archcalc.torch.fx_import import spec_from_module
    from archcalc.torch.verify import verify_spec

    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, padding_mode=mode), nn.Conv2d(8, 4, 3))
    spec = spec_from_module(model, (3, 8, 8))
    assert spec["layers"][0]["padding_mode"] == mode and "padding_mode" not in spec["layers"][1]
    assert training_memory(spec, batch=1).totals["saved_bytes"] == 3 * 10 * 10 * 4 + 8 * 8 * 8 * 4
    assert verify_spec(spec, model).ok
    assert verify_spec(spec).ok  # the module built from the spec pads as the spec says
    plain = json.loads(json.dumps(spec))
    del plain["layers"][0]["padding_mode"]
    bad = verify_spec(plain, model)
    assert not bad.ok and [(r.quantity, r.analytic, r.measured) for r in bad.mismatches] == [("padding_mode", "zeros", mode)]


@pytest.mark.torch
@pytest.mark.parametrize("mode", ["reflect", "circular"])
def test_a_checkpointed_block_of_padded_convs_equals_torch_utils_checkpoint(mode: str) -> None:
    # stem, a block (conv, relu, conv) under torch.utils.checkpoint (use_reentrant=False), head: what
    # autograd keeps, to the byte, and the peak's growth over zeros padding, to the byte (measured:
    # 208,480 B more with the block checkpointed, for either mode, 291,424 and 160,352 without)
    torch = pytest.importorskip("torch")
    from archcalc.torch.build import build_module
    from archcalc.torch.peak import measure_peak
    from archcalc.torch.saved import measure_saved
    from tests.conftest import checkpointed

    def spec(m: str) -> dict[str, Any]:
        conv = {"type": "conv2d", "out_channels": 32, "kernel_size": 3, "padding": 1, "padding_mode": m}
        return {"name": "ck", "input": [3, 16, 16], "blocks": {"b": {"layers": [{"name": "c1", **conv}, {"name": "r", "type": "relu"},
                                                                                  {"name": "c2", **conv}]}},
                "layers": [{"name": "stem", **conv}, {"name": "blk", "type": "block", "block": "b"}, {"name": "head", **conv}]}

    def run(m: str, blocks: list[str]) -> tuple[int, int, Any]:
        G = compile_graph(parse_spec(spec(m)))
        model = checkpointed(G, build_module(G), blocks, reentrant=False, free=True)
        torch.manual_seed(0)
        x = torch.randn(2, 3, 16, 16)
        return measure_saved(model, x).total, measure_peak(model, x).peak, training_memory_from_graph(G, batch=2, checkpoint=blocks).totals

    for blocks in ([], ["blk"]):
        saved, peak, totals = run(mode, blocks)
        _, peak0, totals0 = run("zeros", blocks)
        assert totals["saved_bytes"] == saved
        assert totals["peak_bytes"] - totals0["peak_bytes"] == peak - peak0, (peak - peak0, totals["peak_bytes"] - totals0["peak_bytes"])
