"""Property test: archcalc's formulas against torch on random conv/pool/linear configurations.

Each example is a one- or two-layer spec (conv2d, maxpool2d, avgpool2d, linear) on a small,
often non-square input.  The torch side is built here, straight from the configuration (not via
archcalc's ``build_torch``), run on a real CPU tensor of batch 1 under FlopCounterMode:

* if torch raises (at construction or in the forward), archcalc must raise ``SpecError``, and
  vice versa;
* otherwise every layer's output shape, parameter count and MACs (convention ``torch``:
  FlopCounterMode FLOPs / 2) must be equal, exactly; and the module archcalc builds from the spec
  (``build_torch`` + ``build_module``) must measure the same.

``ARCHCALC_FUZZ_EXAMPLES`` sets the number of examples (default 2000).
"""

from __future__ import annotations

import os
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from archcalc.errors import SpecError  # noqa: E402
from archcalc.graph import compile_spec  # noqa: E402
from archcalc.report import report_from_graph  # noqa: E402
from archcalc.spec import parse_spec  # noqa: E402
from archcalc.torch.measure import measure_spec  # noqa: E402

EXAMPLES = int(os.environ.get("ARCHCALC_FUZZ_EXAMPLES", "2000"))


# ----- strategies -------------------------------------------------------------------------------
def pair(lo: int, hi: int) -> st.SearchStrategy[Any]:
    """An int, or an asymmetric [h, w] pair."""
    return st.one_of(st.integers(lo, hi), st.lists(st.integers(lo, hi), min_size=2, max_size=2))



@st.composite
def conv2d(draw: st.DrawFn, c_in: int) -> dict[str, Any]:
    divisors = [g for g in range(1, c_in + 1) if c_in % g == 0]
    # now and then groups that need not divide the channels: then both must reject it
    groups = draw(st.integers(1, 4) if draw(st.integers(0, 9)) == 0 else st.sampled_from(divisors))
    out = groups * draw(st.integers(1, 3))
    if draw(st.integers(0, 19)) == 0:
        out = draw(st.integers(1, 8))
    stride = draw(pair(1, 3))
    padding = draw(st.one_of(pair(0, 3), st.just("valid"), st.just("same")))
    if padding == "same" and draw(st.integers(0, 4)):  # 'same' mostly with stride 1 (torch rejects it strided)
        stride = 1
    cfg: dict[str, Any] = {"type": "conv2d", "out_channels": out, "kernel_size": draw(pair(1, 5)), "stride": stride,
                           "padding": padding, "dilation": draw(pair(1, 3)), "groups": groups, "bias": draw(st.booleans())}
    return cfg


@st.composite
def pool_padding(draw: st.DrawFn, kernel: Any) -> Any:
    """Mostly within torch's limit (at most half the kernel), now and then anything up to 2: both must reject."""
    if draw(st.integers(0, 4)) == 0:
        return draw(pair(0, 2))
    k = kernel if isinstance(kernel, list) else [kernel, kernel]
    if isinstance(kernel, int) and draw(st.booleans()):
        return draw(st.integers(0, kernel // 2))
    return [draw(st.integers(0, ki // 2)) for ki in k]


@st.composite
def maxpool2d(draw: st.DrawFn) -> dict[str, Any]:
    kernel = draw(pair(1, 4))
    cfg = {"type": "maxpool2d", "kernel_size": kernel, "padding": draw(pool_padding(kernel)),
           "dilation": draw(pair(1, 3)), "ceil_mode": draw(st.booleans())}
    stride = draw(st.one_of(st.none(), pair(1, 3)))
    if stride is not None:
        cfg["stride"] = stride
    return cfg


@st.composite
def avgpool2d(draw: st.DrawFn) -> dict[str, Any]:
    kernel = draw(pair(1, 4))
    cfg = {"type": "avgpool2d", "kernel_size": kernel, "padding": draw(pool_padding(kernel)),
           "ceil_mode": draw(st.booleans()), "count_include_pad": draw(st.booleans())}
    stride = draw(st.one_of(st.none(), pair(1, 3)))
    if stride is not None:
        cfg["stride"] = stride
    return cfg


def linear() -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(lambda n, b: {"type": "linear", "out_features": n, "bias": b}, st.integers(1, 8), st.booleans())


@st.composite
def spatial_layer(draw: st.DrawFn, c_in: int) -> dict[str, Any]:
    kind = draw(st.sampled_from(["conv2d", "conv2d", "maxpool2d", "avgpool2d"]))
    if kind == "conv2d":
        return draw(conv2d(c_in))
    return draw(maxpool2d() if kind == "maxpool2d" else avgpool2d())


@st.composite
def configs(draw: st.DrawFn) -> tuple[list[int], list[dict[str, Any]]]:
    """(input shape, layers): one or two layers; linear acts on the last axis, as in torch."""
    if draw(st.integers(0, 5)) == 0:  # linear first, on a (F,), (C, F) or (C, H, F) input
        shape = draw(st.lists(st.integers(1, 6), min_size=1, max_size=3))
        layers = [draw(linear())]
        if draw(st.booleans()):
            layers.append(draw(linear()))
        return shape, layers
    c = draw(st.integers(1, 6))
    shape = [c, draw(st.integers(1, 16)), draw(st.integers(1, 16))]
    layers = [draw(spatial_layer(c))]
    if draw(st.booleans()):
        c2 = layers[0].get("out_channels", c)
        layers.append(draw(st.one_of(spatial_layer(c2), linear())))
    return shape, layers


# ----- the torch side, straight from the configuration ------------------------------------------
def _t(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def torch_module(cfg: dict[str, Any], x: Any) -> Any:
    kind = cfg["type"]
    if kind == "conv2d":
        return nn.Conv2d(x.shape[1], cfg["out_channels"], _t(cfg["kernel_size"]), _t(cfg["stride"]), _t(cfg["padding"]),
                         _t(cfg["dilation"]), cfg["groups"], cfg["bias"])
    if kind == "maxpool2d":
        return nn.MaxPool2d(_t(cfg["kernel_size"]), _t(cfg.get("stride")), _t(cfg["padding"]), _t(cfg["dilation"]),
                            ceil_mode=cfg["ceil_mode"])
    if kind == "avgpool2d":
        return nn.AvgPool2d(_t(cfg["kernel_size"]), _t(cfg.get("stride")), _t(cfg["padding"]), cfg["ceil_mode"],
                            cfg["count_include_pad"])
    return nn.Linear(x.shape[-1], cfg["out_features"], cfg["bias"])


def torch_measure(shape: list[int], layers: list[dict[str, Any]]) -> tuple[list[tuple[int, ...]], list[tuple[tuple[int, ...], int, int]] | Exception]:
    """(each layer's input shape, per layer (output shape, params, MACs)) as torch has them; or the exception torch raised."""
    x = torch.zeros(1, *shape)
    ins: list[tuple[int, ...]] = []
    out = []
    try:
        with torch.no_grad():
            for cfg in layers:
                ins.append(tuple(x.shape[1:]))
                m = torch_module(cfg, x)
                with FlopCounterMode(display=False) as fc:
                    x = m(x)
                flops = fc.get_total_flops()
                assert flops % 2 == 0
                out.append((tuple(x.shape[1:]), sum(p.numel() for p in m.parameters()), flops // 2))
    except (RuntimeError, ValueError) as e:
        return ins, e
    return ins, out


def archcalc_measure(shape: list[int], layers: list[dict[str, Any]]) -> tuple[Any, list[tuple[tuple[int, ...], int, int]]] | SpecError:
    spec = {"name": "fuzz", "input": shape, "layers": [{"name": f"l{i}", **cfg} for i, cfg in enumerate(layers)]}
    try:
        G = compile_spec(parse_spec(spec))
        report = report_from_graph(G, convention="torch")
    except SpecError as e:
        return e
    return G, [(tuple(r.output_shape), r.params, r.macs) for r in report.rows]


# ----- the property -----------------------------------------------------------------------------
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs())
def test_formulas_match_torch(cfg: tuple[list[int], list[dict[str, Any]]]) -> None:
    shape, layers = cfg
    _, want = torch_measure(shape, layers)
    got = archcalc_measure(shape, layers)
    event("torch raised" if isinstance(want, Exception) else "torch accepted")
    event(f"layers: {'+'.join(cfg['type'] for cfg in layers)}")
    if isinstance(want, Exception) or isinstance(got, SpecError):
        assert isinstance(want, Exception) == isinstance(got, SpecError), (
            f"input {shape}, layers {layers}: torch {'raised ' + repr(want) if isinstance(want, Exception) else 'accepted it'}, "
            f"archcalc {'raised ' + repr(got) if isinstance(got, SpecError) else 'accepted it'}"
        )
        return
    G, rows = got
    assert rows == want, f"input {shape}, layers {layers}: archcalc (shape, params, MACs) {rows} != torch {want}"
    # the module archcalc builds from the spec measures the same as the hand-built one
    built = measure_spec(G, device="cpu")
    measured = [(built.layers[f"l{i}"].output_shape, built.layers[f"l{i}"].params, built.layers[f"l{i}"].macs) for i in range(len(layers))]
    assert measured == want, f"input {shape}, layers {layers}: build_torch module {measured} != torch {want}"


# ----- found by this fuzzer: in ceil mode torch accepts a window overhanging the padded input by up
# ----- to stride - 1 (output size 1); archcalc used to reject it
@pytest.mark.parametrize(
    ("shape", "layer", "torch_out"),
    [
        ([1, 1, 1], {"type": "maxpool2d", "kernel_size": 2, "ceil_mode": True}, (1, 1, 1)),
        ([1, 2, 2], {"type": "avgpool2d", "kernel_size": 3, "stride": 2, "ceil_mode": True}, (1, 1, 1)),
        ([1, 1, 1], {"type": "maxpool2d", "kernel_size": 4, "stride": 2, "padding": 1, "ceil_mode": True}, (1, 1, 1)),
        ([2, 4, 9], {"type": "maxpool2d", "kernel_size": 3, "stride": 2, "dilation": 2, "ceil_mode": True}, (2, 1, 3)),
    ],
)
def test_ceil_mode_window_overhanging_the_input(shape: list[int], layer: dict[str, Any], torch_out: tuple[int, ...]) -> None:
    cfg = {**layer, "padding": layer.get("padding", 0), "ceil_mode": True}
    if cfg["type"] == "maxpool2d":
        cfg.setdefault("dilation", 1)
    else:
        cfg.setdefault("count_include_pad", True)
    _, want = torch_measure(shape, [cfg])
    assert want == [(torch_out, 0, 0)]  # torch accepts it
    got = archcalc_measure(shape, [cfg])
    if isinstance(got, SpecError):
        raise got
    assert got[1] == want
