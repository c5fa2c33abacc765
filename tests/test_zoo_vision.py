"""The vision models of this decade (issue 11): hand-written specs checked against torchvision.

Published figures (torchvision's model docs, "Params" and "GFLOPS" of each builder's weights
entry; torchvision counts multiply-adds, attention included, and calls them GFLOPS):

    vit_b_16            86,567,656   17.56      vit_b_32        88,224,232   4.41
    convnext_tiny       28,589,128    4.46      efficientnet_b0  5,288,548   0.39
    mobilenet_v3_large   5,483,032    0.22      regnet_y_400mf   4,344,144   0.40

Each spec is also compared with torchvision's own model, built on the meta device and measured
with FlopCounterMode on a path that counts attention (archcalc.torch.measure.counting_path):
total params, output shape, total MACs, and the params and MACs of every torchvision module
(a layer, or a block: the spec rows under that module's name).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from conftest import SPECS, cli

from archcalc import analyze

PUBLISHED = {
    # spec: (params, GFLOPS as torchvision publishes it: multiply-adds / 1e9, two decimals)
    "vit_b_16": (86_567_656, 17.56),
    "vit_b_32": (88_224_232, 4.41),
    "convnext_tiny": (28_589_128, 4.46),
    "efficientnet_b0": (5_288_548, 0.39),
    "mobilenet_v3_large": (5_483_032, 0.22),
    "regnet_y_400mf": (4_344_144, 0.40),
}


@pytest.mark.parametrize("name", PUBLISHED)
def test_published_params_and_gflops(name: str) -> None:
    params, gflops = PUBLISHED[name]
    rep = analyze(SPECS / f"{name}.json", convention="torch")
    assert rep.totals["params"] == params
    assert round(rep.totals["macs"] / 1e9, 2) == gflops
    assert rep.rows[-1].output_shape == (1000,)


def test_vit_b_16_by_hand() -> None:
    # 224/16 = 14 patches a side: L = 14*14 + 1 = 197 tokens of 768
    rep = analyze(SPECS / "vit_b_16.json", convention="torch")
    L, D, MLP = 197, 768, 3072
    patch = 14 * 14 * 768 * (3 * 16 * 16)
    # per block: q, k, v and out projections, 2 * heads * L * L * (768/12) for attention, the MLP
    block = 4 * L * D * D + 2 * 12 * L * L * 64 + 2 * L * D * MLP
    assert rep.totals["macs"] == patch + 12 * block + D * 1000
    # params: conv 768*3*16*16 + 768, class token 768, position embedding 197*768,
    # per block 2 LayerNorms (2*768 each), attention 4*768*768 + 4*768, MLP 2*768*3072 + 3072 + 768;
    # final LayerNorm 2*768, head 768*1000 + 1000
    per_block = 2 * 2 * D + 4 * D * D + 4 * D + 2 * D * MLP + MLP + D
    assert rep.totals["params"] == D * 3 * 16 * 16 + D + D + L * D + 12 * per_block + 2 * D + D * 1000 + 1000


def test_vit_table_is_a_polynomial_in_h_and_w() -> None:
    """`archcalc table specs/vit_b_16.json --input 3,H,W`: L = HW/256 + 1 tokens, attention grows as (HW)^2."""
    r = cli("table", str(SPECS / "vit_b_16.json"), "--input", "3,H,W", "--convention", "torch", "--format", "json")
    assert r.code == 0, r.err
    import json

    import sympy

    H, W = sympy.symbols("H W", positive=True, integer=True)
    data = json.loads(r.out)
    macs = sympy.sympify(data["totals"]["macs"], locals={"H": H, "W": W})
    assert not macs.has(sympy.floor, sympy.ceiling)
    poly = sympy.Poly(macs, H, W)
    # the (HW)^2 term is attention's: 12 blocks x 2 * 12 heads * (HW/256)^2 * 64
    assert poly.coeff_monomial(H**2 * W**2) == sympy.Rational(12 * 2 * 12 * 64, 256 * 256)
    assert poly.total_degree() == 4
    assert macs.subs({H: 224, W: 224}) == analyze(SPECS / "vit_b_16.json", convention="torch").totals["macs"]
    assert sympy.sympify(data["totals"]["params"], locals={"H": H, "W": W}) == 86_567_656 - 197 * 768 + (H * W / 256 + 1) * 768
    text = cli("table", str(SPECS / "vit_b_16.json"), "--input", "3,H,W", "--convention", "torch")
    assert "H^2*W^2" in text.out and "floor" not in text.out


def test_vit_attention_sees_the_whole_image() -> None:
    rep = analyze(SPECS / "vit_b_16.json")
    assert rep.row("conv_proj").receptive_field == (16, 16)
    assert rep.row("encoder.layers.encoder_layer.0.self_attention").receptive_field == (224, 224)
    assert rep.row("heads.head").receptive_field == (224, 224)


# ----- against torchvision's own models -------------------------------------------------------------
def _rename(name: str) -> str:
    """Spec names (block copies 'call.i.layer') to torchvision's module names."""
    name = re.sub(r"encoder\.layers\.encoder_layer\.(\d+)", r"encoder.layers.encoder_layer_\1", name)
    return re.sub(r"trunk_output\.block(\d)\.(\d+)\.", r"trunk_output.block\1.block\1-\2.", name)


def _torchvision(name: str) -> Any:
    torch = pytest.importorskip("torch")
    models = pytest.importorskip("torchvision.models")
    try:
        with torch.device("meta"):
            return getattr(models, name)().eval()
    except NotImplementedError:  # regnet computes its widths with real tensors
        return getattr(models, name)().eval().to("meta")


@pytest.mark.parametrize("name", PUBLISHED)
def test_spec_matches_torchvision_module_by_module(name: str) -> None:
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    from archcalc.torch.measure import counting_path

    model = _torchvision(name)
    with torch.no_grad(), counting_path(), FlopCounterMode(display=False) as fc:
        y = model(torch.zeros(1, 3, 224, 224, device="meta"))
    counts = fc.get_flop_counts()
    root = type(model).__name__
    rep = analyze(SPECS / f"{name}.json", convention="torch")
    assert rep.totals["params"] == sum(p.numel() for p in model.parameters())
    assert rep.totals["macs"] == fc.get_total_flops() // 2
    assert rep.rows[-1].output_shape == tuple(y.shape[1:])
    names = [_rename(r.name) for r in rep.rows]
    compared = 0
    for module_name, module in model.named_modules():
        rows = [r for r, n in zip(rep.rows, names, strict=True) if n == module_name or n.startswith(module_name + ".")]
        params = sum(p.numel() for p in module.parameters())
        if not module_name or not rows:
            # only out_proj inside nn.MultiheadAttention has no row of its own (the attention row holds it)
            assert not module_name or not params or module_name.endswith("self_attention.out_proj"), module_name
            continue
        compared += 1
        assert sum(r.params for r in rows) == params, module_name
        assert sum(r.macs for r in rows) == sum(counts.get(f"{root}.{module_name}", {}).values()) // 2, module_name
    assert compared > 100
