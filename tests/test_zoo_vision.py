"""The vision models of this decade (issue 11): hand-written specs checked against torchvision.

Published figures (torchvision's model docs, "Params" and "GFLOPS" of each builder's weights
entry; torchvision counts multiply-adds, attention included, and calls them GFLOPS):

    vit_b_16            86,567,656   17.56      vit_b_32        88,224,232   4.41
    convnext_tiny       28,589,128    4.46      efficientnet_b0  5,288,548   0.39
    mobilenet_v3_large   5,483,032    0.22      regnet_y_400mf   4,344,144   0.40
    swin_t              28,288,354    4.49      maxvit_t        30,919,624   5.56

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
    "swin_t": (28_288_354, 4.49),
    "maxvit_t": (30_919_624, 5.56),
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
    assert "H^2*W^2" in text.out and "floor" not in text.out  # (human text writes powers with ^)


def test_a_position_table_sized_by_the_input_says_it_grows() -> None:
    """Review s7 #28: `--input 3,448,448` on ViT-B/16 grew the learned position table from 197 to
    (448/16)**2 + 1 = 785 rows (params 86,567,656 + (785 - 197) * 768 = 87,019,240), with only the note
    "a learned tensor read in forward": torchvision's vit_b_16 refuses a 448 image.  The row says so."""
    r = cli("table", str(SPECS / "vit_b_16.json"), "--input", "3,448,448", "--format", "json")
    assert r.code == 0, r.err
    import json

    doc = json.loads(r.out)
    assert doc["totals"]["params"] == 86_567_656 + (785 - 197) * 768
    (row,) = [row for row in doc["layers"] if row["name"] == "encoder.pos_embedding"]
    assert row["params"] == ((448 // 16) ** 2 + 1) * 768
    assert "sized like its input, so its params follow the input size" in row["note"]
    assert "refuses another" in row["note"]
    # a parameter of a fixed shape (the class token) says nothing of the kind
    (token,) = [row for row in doc["layers"] if row["name"] == "class_token"]
    assert "follow the input" not in token["note"]
    # compare at 448 said "7.44x params" against ResNet-18 with no word of it: it says whose params moved
    r = cli("compare", str(SPECS / "resnet18.json"), str(SPECS / "vit_b_16.json"), "--input", "3,448,448")
    assert r.code == 0, r.err
    grown = f"{86_567_656:,} at its own 3×224×224, {86_567_656 + (785 - 197) * 768:,} at 3×448×448"
    assert f"note: vit_b_16's params follow the input (encoder.pos_embedding): {grown}" in r.out
    assert "resnet18's params" not in r.out  # a conv net's parameters do not depend on the image size


def test_swin_t_by_hand() -> None:
    """Liu et al. 2021, Table 1: Swin-T, C = 96, blocks {2, 2, 6, 2}, heads {3, 6, 12, 24}, 7x7 windows."""
    rep = analyze(SPECS / "swin_t.json", convention="torch")
    stages = [(96, 3, 2, 56 * 56), (192, 6, 2, 28 * 28), (384, 12, 6, 14 * 14), (768, 24, 2, 7 * 7)]  # (C, heads, blocks, tokens L)
    # a block: 2 LayerNorms (4C), qkv 3C*C + 3C, proj C*C + C, the relative position bias table
    # (2*7 - 1)^2 = 169 per head, MLP C*4C + 4C + 4C*C + C; patch merging: LayerNorm over 4C (8C), 4C -> 2C
    block_params = sum(n * (12 * c * c + 13 * c + 169 * h) for c, h, n, _ in stages)
    merge_params = sum(8 * c + 8 * c * c for c, _, _, _ in stages[:3])
    assert rep.totals["params"] == 96 * 3 * 4 * 4 + 96 + 2 * 96 + block_params + merge_params + 2 * 768 + 768 * 1000 + 1000
    # MACs per block over L tokens (all four maps are multiples of 7: no padding): qkv and proj 4LC^2,
    # q k^T and attn v over windows of 49 tokens 2*L*49*C (nW*49 = L, heads*d = C), MLP 8LC^2
    blocks = sum(n * (12 * L * c * c + 2 * L * 49 * c) for c, _, n, L in stages)
    merges = sum(L // 4 * 4 * c * 2 * c for c, _, _, L in stages[:3])
    assert rep.totals["macs"] == 56 * 56 * 96 * 3 * 4 * 4 + blocks + merges + 768 * 1000
    assert rep.rows[-1].output_shape == (1000,)


def test_maxvit_t_by_hand() -> None:
    """Tu et al. 2022, Table 1: MaxViT-T, C = (64, 128, 256, 512), B = (2, 2, 5, 2), heads of 32, 7x7 windows and grid."""
    rep = analyze(SPECS / "maxvit_t.json", convention="torch")
    # stem: 3x3 stride-2 conv without bias, BatchNorm, 3x3 conv with bias
    params, macs = 64 * 3 * 9 + 2 * 64 + 64 * 64 * 9 + 64, 112 * 112 * 64 * 3 * 9 + 112 * 112 * 64 * 64 * 9
    c_in = 64
    for c, layers, heads, h in ((64, 2, 2, 112), (128, 2, 4, 56), (256, 5, 8, 28), (512, 2, 16, 14)):  # h: the stage's input map
        for i in range(layers):
            first, mid, se, ci, hw_in, hw = i == 0, 4 * c, c // 4, c_in if i == 0 else c, h * h if i == 0 else h * h // 4, h * h // 4
            # MBConv: shortcut 1x1 conv (first layer), BN, 1x1 expansion (at the input's resolution), BN, 3x3 depthwise, BN,
            # squeeze-and-excitation mid -> C/4 -> mid (with biases), 1x1 projection with bias
            params += (ci * c + c if first else 0) + 2 * ci + ci * mid + 2 * mid + 9 * mid + 2 * mid + 2 * mid * se + se + mid + mid * c + c
            macs += (hw * ci * c if first else 0) + hw_in * ci * mid + hw * 9 * mid + 2 * mid * se + hw * mid * c
            # block and grid attention over L = hw tokens: 2 LayerNorms, qkv 3C^2 + 3C, the 169-entry bias table per head,
            # merge C^2 + C, MLP 8C^2 + 5C; MACs 4LC^2 + 2*L*49*C (groups * heads * 49 * 49 * 32) + 8LC^2
            params += 2 * (12 * c * c + 13 * c + 169 * heads)
            macs += 2 * (12 * hw * c * c + 2 * hw * 49 * c)
        c_in = c
    # head: LayerNorm 512, Linear 512 -> 512 (bias), Linear 512 -> 1000 (no bias)
    params += 2 * 512 + 512 * 512 + 512 + 512 * 1000
    macs += 512 * 512 + 512 * 1000
    assert rep.totals["params"] == params
    assert rep.totals["macs"] == macs
    # the partitions are hand-written reshapes: from the first attention on, the receptive field is an upper bound
    assert rep.row("blocks.0.layers.0.layers.MBconv.layers.conv_c").rf_approximate is False
    assert rep.row("blocks.0.layers.0.layers.window_attention.attn_layer.1.scores").rf_approximate is True


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
            # only the parts of a composite layer have no row of their own (nn.MultiheadAttention's
            # out_proj, Swin attention's qkv and proj): the row of the module holding them counts them
            inside = any(module_name.startswith(n + ".") for n in names)
            assert not module_name or not params or inside, module_name
            continue
        compared += 1
        assert sum(r.params for r in rows) == params, module_name
        if isinstance(module, torch.nn.ModuleList):  # never called itself (MaxViT's blocks): FlopCounterMode has no entry
            continue
        assert sum(r.macs for r in rows) == sum(counts.get(f"{root}.{module_name}", {}).values()) // 2, module_name
    assert compared > 100
