"""Named counting conventions: each peer tool's total reproduced from its own rules.

The ResNet-50 figures (224x224, batch 1) were measured with torchinfo 1.8.0, fvcore 0.1.5, ptflops 0.7.5
(pytorch backend) and thop 0.1.1 on torchvision's resnet50, and torch's FlopCounterMode / 2 (issue 3).
When those tools are installed (pip install '.[peers]'), they are also run on models built from the
specs and must agree exactly. (Checked once by hand on every zoo network of the lineage as well,
U-Net and C3D included; the test keeps the small ones.)
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings

import pytest
from conftest import SPECS

from archcalc import analyze

RESNET50 = {
    "torch": 4_089_184_256,  # FlopCounterMode / 2: conv + linear MACs
    "torchinfo": 4_089_238_376,  # + 53,120 batchnorm affine params + 1,000 fc bias
    "fvcore": 4_111_512_576,  # + 2 x 11,113,984 batchnorm elements + 100,352 global-pool inputs
    "ptflops": 4_132_436_968,  # + 1,000 fc bias + 2 x 9,608,704 ReLU + 2 x 903,168 pool inputs + 2 x 11,113,984 BN
    "thop": 4_133_742_592,  # + 4 x 11,113,984 batchnorm elements + (49 + 1) x 2048 global pool
    "lecture": 4_091_090_944,  # + 64*56*56*9 max-pool window reads + 2048*7*7 global-pool reads
}


@pytest.mark.parametrize(("convention", "macs"), RESNET50.items())
def test_resnet50_per_convention(convention: str, macs: int) -> None:
    assert analyze(SPECS / "resnet50.json", convention=convention).totals["macs"] == macs


def test_the_gaps_are_what_each_tool_adds() -> None:
    bn_elements = sum(r.ops.get("norm", 0) for r in analyze(SPECS / "resnet50.json").rows)
    relu_elements = sum(r.ops.get("act", 0) for r in analyze(SPECS / "resnet50.json").rows)
    assert bn_elements == 11_113_984 and relu_elements == 9_608_704
    base = RESNET50["torch"]
    assert RESNET50["fvcore"] - base == 2 * bn_elements + 2048 * 7 * 7
    assert RESNET50["thop"] - base == 4 * bn_elements + (7 * 7 + 1) * 2048
    assert RESNET50["ptflops"] - base == 1000 + 2 * relu_elements + 2 * (64 * 112 * 112 + 2048 * 7 * 7) + 2 * bn_elements


def _peer(convention: str, model, shape):  # type: ignore[no-untyped-def]
    import torch

    x = torch.zeros(1, *shape)
    quiet = contextlib.redirect_stdout(io.StringIO())
    if convention == "torchinfo":
        torchinfo = pytest.importorskip("torchinfo")
        return torchinfo.summary(model, input_data=x, verbose=0).total_mult_adds
    if convention == "fvcore":
        fv = pytest.importorskip("fvcore.nn")
        f = fv.FlopCountAnalysis(model, x)
        f.unsupported_ops_warnings(False)
        f.uncalled_modules_warnings(False)
        return f.total()
    if convention == "ptflops":
        ptflops = pytest.importorskip("ptflops")
        with quiet:
            macs, _ = ptflops.get_model_complexity_info(model, tuple(shape), as_strings=False, print_per_layer_stat=False, backend="pytorch")
        return macs
    thop = pytest.importorskip("thop")
    with quiet:
        macs, _ = thop.profile(model, inputs=(x,), verbose=False)
    return int(macs)


@pytest.mark.parametrize("convention", ["torchinfo", "fvcore", "ptflops", "thop"])
@pytest.mark.parametrize("spec", ["lenet5", "alexnet_2012", "resnet18", "resnet20", "googlenet", "vgg11_lrn", "mobilenet_v2",
                                  "shufflenet_v2_x1_0", "conv1d_text", "tiny_unet"])
def test_peer_tool_agrees(spec: str, convention: str) -> None:
    torch = pytest.importorskip("torch")
    from archcalc import parse_spec
    from archcalc.graph import compile_spec
    from archcalc.spec import load_spec
    from archcalc.torch.build import build_module

    arch = parse_spec(TINY_UNET) if spec == "tiny_unet" else load_spec(SPECS / f"{spec}.json")
    G = compile_spec(arch)
    model = build_module(G).eval()
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            measured = _peer(convention, model, tuple(G.graph["input_shape"]))
    finally:
        logging.disable(logging.NOTSET)
    assert int(measured) == analyze(arch, convention=convention).totals["macs"]


# a transposed convolution, which torchinfo and thop count on its output grid (U-Net's up-convs)
TINY_UNET = {
    "name": "tiny_unet", "input": [1, 32, 32],
    "layers": [
        {"name": "down", "type": "conv2d", "out_channels": 8, "kernel_size": 3},
        {"name": "relu1", "type": "relu"},
        {"name": "pool", "type": "maxpool2d", "kernel_size": 2},
        {"name": "up", "type": "convtranspose2d", "out_channels": 4, "kernel_size": 2, "stride": 2},
        {"name": "relu2", "type": "relu"},
        {"name": "head", "type": "conv2d", "out_channels": 2, "kernel_size": 1},
    ],
}


# ----- transformers and ConvNeXt (issue 11) ------------------------------------------------------------
# fvcore 0.1.5 on torchvision's vit_b_16 and convnext_tiny at 224x224 (measured here, torch 2.14.1):
#   vit_b_16:      conv 115,605,504 + linear 16,732,895,232 + layer_norm 18,912,000 = 16,867,412,736
#                  (aten::scaled_dot_product_attention is unsupported: attention counts 0)
#   convnext_tiny: conv 292,965,120 + linear 4,162,566,144 + layer_norm 14,868,480 + adaptive_avg_pool2d 37,632
#                  = 4,470,437,376
VIT_L, VIT_D = 197, 768
FVCORE = {
    # torch's count less attention's products (12 blocks x 2 * 12 heads * 197 * 197 * 64), plus 5 per
    # element for each of the 25 affine LayerNorms over 197 x 768
    "vit_b_16": 17_563_828_224 - 12 * 2 * 12 * VIT_L * VIT_L * 64 + 25 * 5 * VIT_L * VIT_D,
    # torch's count plus 5 per LayerNorm element (2,973,696 elements in all) and the global pool's 768 * 7 * 7 inputs
    "convnext_tiny": 4_455_531_264 + 5 * 2_973_696 + 768 * 7 * 7,
    # swin_t (fvcore 0.1.5, measured here: conv 14,450,688 + linear 4,335,974,400 + matmul 140,141,568 +
    # layer_norm 18,627,840 + adaptive_avg_pool2d 37,632): torch's count (the window attention's q k^T and
    # attn v are aten::matmul, which fvcore counts) plus 5 per LayerNorm element: the stem's 56*56*96, two per
    # block (2 blocks of 56*56*96, 2 of 28*28*192, 6 of 14*14*384, 2 of 7*7*768), patch merging's over 4C
    # (28*28*384 + 14*14*768 + 7*7*1536) and the final 7*7*768; plus the global pool's 768 * 7 * 7 inputs
    "swin_t": 4_490_566_656
    + 5 * (56 * 56 * 96 + 2 * 2 * (56 * 56 * 96 + 28 * 28 * 192 + 14 * 14 * 384 * 3 + 7 * 7 * 768)
           + 28 * 28 * 384 + 14 * 14 * 768 + 7 * 7 * 1536 + 7 * 7 * 768)
    + 768 * 7 * 7,
}


def test_fvcore_rounds_einsum_on_maxvit() -> None:
    """torchvision's MaxViT writes attention's two products with torch.einsum, which fvcore 0.1.5 counts
    through numpy's einsum_path: the FLOP count it prints ("{:.3e}") halved, so each product is rounded to
    4 significant digits.  The spec writes them as matmul, counted exactly: fvcore is 1,072 higher."""
    pytest.importorskip("torch")
    models = pytest.importorskip("torchvision.models")
    pytest.importorskip("fvcore.nn")
    exact = analyze(SPECS / "maxvit_t.json", convention="fvcore").totals["macs"]
    # per stage (C, layers, windows or grid cells n*n): 2 partitions x 2 einsums of groups*heads*49*49*32 multiply-adds
    products = [n * n * (c // 32) * 49 * 49 * 32 for c, layers, n in ((64, 2, 8), (128, 2, 4), (256, 5, 2), (512, 2, 1)) for _ in range(4 * layers)]
    rounding = sum(int(float(f"{2 * m:.3e}")) // 2 - m for m in products)
    assert rounding == 1_072
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            got = _peer("fvcore", models.maxvit_t().eval(), (3, 224, 224))
        finally:
            logging.disable(logging.NOTSET)
    assert got == exact + rounding


@pytest.mark.parametrize("spec", FVCORE)
def test_fvcore_on_transformers(spec: str) -> None:
    assert analyze(SPECS / f"{spec}.json", convention="fvcore").totals["macs"] == FVCORE[spec]
    assert FVCORE == {"vit_b_16": 16_867_412_736, "convnext_tiny": 4_470_437_376, "swin_t": 4_509_232_128}


@pytest.mark.parametrize("spec", FVCORE)
def test_fvcore_tool_agrees_on_torchvision_models(spec: str) -> None:
    torch = pytest.importorskip("torch")
    models = pytest.importorskip("torchvision.models")
    pytest.importorskip("fvcore.nn")
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            got = _peer("fvcore", getattr(models, spec)().eval(), (3, 224, 224))
        finally:
            logging.disable(logging.NOTSET)
    assert got == FVCORE[spec]


# thop 0.1.1 on transformers (measured here on torchvision's models, torch 2.14.1, eval, no_grad; per module
# with profile(..., ret_layer_info=True)): conv and linear MACs without bias, nn.LayerNorm 4 per element
# (affine), nn.MultiheadAttention and torchvision's ShiftedWindowAttention 0 (no rule; their projections
# are functional), GELU, layer scale and stochastic depth 0, the global pool (49 + 1) * 768
THOP = {
    # conv 14*14*768 * 768 (3*16*16 inputs) + MLPs 12 * 2 * 197*768*3072 + head 768*1000 + 25 LayerNorms over 197 x 768
    "vit_b_16": 14 * 14 * 768 * 768 + 12 * 2 * 197 * 768 * 3072 + 768 * 1000 + 4 * 25 * 197 * 768,
    # torch's count (4,490,566,656) less the window attention's projections and products, plus 4 per LayerNorm element
    # (3,725,568, as in FVCORE above) and the pool
    "swin_t": 4_490_566_656 - sum(n * (4 * L * c * c + 2 * L * 49 * c) for c, n, L in ((96, 2, 3136), (192, 2, 784), (384, 6, 196), (768, 2, 49)))
    + 4 * 3_725_568 + (49 + 1) * 768,
    # torch's count plus 4 per element of the blocks' nn.LayerNorm (2,973,696 LayerNorm elements in all, less
    # LAYERNORM2D's below) and the pool
    "convnext_tiny": 4_455_531_264 + 4 * (2_973_696 - 56 * 56 * 96 - 56 * 56 * 96 - 28 * 28 * 192 - 14 * 14 * 384 - 768) + (49 + 1) * 768,
}
# torchvision's ConvNeXt normalises its stem, downsampling and head with LayerNorm2d, a subclass of nn.LayerNorm whose
# forward calls F.layer_norm (the spec says so: "function"), which neither thop nor ptflops counts (no hook for the
# subclass, F.layer_norm not patched): 0 for 56*56*96 + 56*56*96 + 28*28*192 + 14*14*384 + 768 elements
LAYERNORM2D = 56 * 56 * 96 + 56 * 56 * 96 + 28 * 28 * 192 + 14 * 14 * 384 + 768


@pytest.mark.parametrize("spec", THOP)
def test_thop_on_transformers(spec: str) -> None:
    assert analyze(SPECS / f"{spec}.json", convention="thop").totals["macs"] == THOP[spec]
    assert THOP == {"vit_b_16": 11_286_254_592, "swin_t": 2_978_099_712, "convnext_tiny": 4_464_149_760}


@pytest.mark.parametrize("spec", THOP)
def test_thop_tool_agrees_on_transformers(spec: str) -> None:
    """On the model built from the spec, and on torchvision's own."""
    torch = pytest.importorskip("torch")
    models = pytest.importorskip("torchvision.models")
    pytest.importorskip("thop")
    from archcalc.graph import compile_spec
    from archcalc.spec import load_spec
    from archcalc.torch.build import build_module

    G = compile_spec(load_spec(SPECS / f"{spec}.json"))
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            built = _peer("thop", build_module(G).eval(), (3, 224, 224))
            theirs = _peer("thop", getattr(models, spec)().eval(), (3, 224, 224))
    finally:
        logging.disable(logging.NOTSET)
    assert built == THOP[spec]
    assert theirs == THOP[spec]


@pytest.mark.parametrize("convention", ["thop", "torchinfo", "ptflops"])
def test_peers_still_refuse_what_they_were_not_checked_on(convention: str) -> None:
    from archcalc.errors import SpecError

    sdpa = {"type": "scaled_dot_product_attention", "inputs": ["input", "input", "input"]}
    for layer in ({"type": "mean", "dim": 1}, {"type": "groupnorm", "num_groups": 2}, sdpa):
        spec = {"name": "n", "input": [4, 6], "layers": [{"name": "x", **layer}]}
        with pytest.raises(SpecError, match="does not reproduce"):
            analyze(spec, convention=convention)


# torchinfo 1.8 "Mult-Adds" on transformers (measured here on torchvision's models; ModelStatistics sums
# leaf modules only, LayerInfo.calculate_macs counts a conv's weight and bias per output position and any
# other leaf's weight and bias once per sample): nn.MultiheadAttention and ShiftedWindowAttention have
# submodules (0), their out_proj / qkv / proj are never called as modules (0); layer scale, class token
# and position embedding are parameters of modules with submodules (0)
STAGES = ((96, 3, 56 * 56), (192, 3, 28 * 28), (384, 9, 14 * 14), (768, 3, 7 * 7))  # ConvNeXt-T: (C, blocks, HW)
SWIN = ((96, 2, 56 * 56), (192, 2, 28 * 28), (384, 6, 14 * 14), (768, 2, 7 * 7))  # Swin-T: (C, blocks, tokens)
TORCHINFO = {
    # patch conv (768*768 weights + 768 biases) per 14*14 output; 12 MLPs of 768*3072 + 3072 + 3072*768 + 768;
    # the head 768*1000 + 1000; 25 LayerNorms of 2*768
    "vit_b_16": (768 * 768 + 768) * 14 * 14 + 12 * (2 * 768 * 3072 + 3072 + 768) + 768 * 1000 + 1000 + 25 * 2 * 768,
    # patch conv (96*48 + 96) per 56*56 output; per block its MLP (8C^2 + 5C) and 2 LayerNorms (4C); patch merging
    # 4C*2C and its LayerNorm 8C; the head; the stem's and the final LayerNorm
    "swin_t": (96 * 48 + 96) * 56 * 56 + sum(n * (8 * c * c + 5 * c + 4 * c) for c, n, _ in SWIN)
    + sum(8 * c * c + 8 * c for c, _, _ in SWIN[:3]) + 768 * 1000 + 1000 + 2 * 96 + 2 * 768,
    # patch conv per 56*56; per block its 7x7 depthwise conv (49C + C) per position, MLP (8C^2 + 5C), LayerNorm 2C;
    # the 2x2 downsampling convs (4 C_prev C + C) per position; LayerNorm2d 2*96, 2*C_prev, 2*768; the head
    "convnext_tiny": (96 * 48 + 96) * 56 * 56 + sum(b * ((49 * c + c) * hw + 8 * c * c + 5 * c + 2 * c) for c, b, hw in STAGES)
    + sum((4 * STAGES[i - 1][0] * STAGES[i][0] + STAGES[i][0]) * STAGES[i][2] + 2 * STAGES[i - 1][0] for i in (1, 2, 3))
    + 2 * 96 + 2 * 768 + 768 * 1000 + 1000,
}


@pytest.mark.parametrize("spec", TORCHINFO)
def test_torchinfo_on_transformers(spec: str) -> None:
    assert analyze(SPECS / f"{spec}.json", convention="torchinfo").totals["macs"] == TORCHINFO[spec]
    assert TORCHINFO == {"vit_b_16": 173_232_616, "swin_t": 34_368_232, "convnext_tiny": 322_371_592}


@pytest.mark.parametrize("spec", TORCHINFO)
def test_torchinfo_tool_agrees_on_transformers(spec: str) -> None:
    """On torchvision's model, and on the one built from the spec (where ViT's class token and position
    embedding are leaf modules holding a 'weight': torchinfo counts them, 768 + 197*768)."""
    torch = pytest.importorskip("torch")
    models = pytest.importorskip("torchvision.models")
    pytest.importorskip("torchinfo")
    from archcalc.graph import compile_spec
    from archcalc.spec import load_spec
    from archcalc.torch.build import build_module

    G = compile_spec(load_spec(SPECS / f"{spec}.json"))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        theirs = _peer("torchinfo", getattr(models, spec)().eval(), (3, 224, 224))
        built = _peer("torchinfo", build_module(G).eval(), (3, 224, 224))
    assert theirs == TORCHINFO[spec]
    assert built == TORCHINFO[spec] + (768 + 197 * 768 if spec == "vit_b_16" else 0)


# ptflops 0.7.5, pytorch backend, on transformers (measured here on torchvision's models; pytorch_ops.py): conv
# and linear MACs + bias; nn.LayerNorm one per element (its batchnorm hook doubles only for an 'affine'
# attribute); GELU twice (module hook + patched F.gelu); adaptive average pool twice its input;
# nn.MultiheadAttention by its own formula: q scaling L*E, projections 3*L*E^2 + 3*L*E, per head
# L^2*d + L^2 + L^2*d, output L*E*(E + 1); torchvision's ShiftedWindowAttention has no hook and calls
# F.linear (not patched): only its Tensor.matmul (q k^T, attn v) and F.softmax count
PTFLOPS = {
    "vit_b_16": (768 * 768 + 768) * 14 * 14 + 12 * 197 * (2 * 768 * 3072 + 3072 + 768) + 768 * 1000 + 1000 + 25 * 197 * 768
    + 2 * 12 * 197 * 3072 + 12 * (197 * 768 + 4 * 197 * 768 * 768 + 3 * 197 * 768 + 12 * (2 * 197 * 197 * 64 + 197 * 197) + 197 * 768),
    # per block over L tokens: MLP L*(8C^2 + 5C), 2 LayerNorms 2LC, GELU 2 * 4LC, window products 2*L*49*C, softmax
    # nW*heads*49*49 = 49*L*heads; patch merging: LayerNorm L*C, reduction (L/4)*4C*2C; stem and final LayerNorm,
    # the pool twice 49*768, the head
    "swin_t": (96 * 48 + 96) * 56 * 56
    + sum(n * (L * (8 * c * c + 5 * c) + 2 * L * c + 2 * L * 4 * c + 2 * L * 49 * c + 49 * L * h)
          for c, h, n, L in ((96, 3, 2, 3136), (192, 6, 2, 784), (384, 12, 6, 196), (768, 24, 2, 49)))
    + sum(L * c + L // 4 * 8 * c * c for c, L in ((96, 3136), (192, 784), (384, 196)))
    + 56 * 56 * 96 + 7 * 7 * 768 + 2 * 7 * 7 * 768 + 768 * 1000 + 1000,
    # per block: 7x7 depthwise conv (49C + C) per position, MLP HW*(8C^2 + 5C), LayerNorm HW*C, GELU 2*4*HW*C;
    # downsampling convs; the pool twice; the head (LayerNorm2d's F.layer_norm: 0)
    "convnext_tiny": (96 * 48 + 96) * 56 * 56
    + sum(b * ((49 * c + c) * hw + hw * (8 * c * c + 5 * c) + hw * c + 2 * hw * 4 * c) for c, b, hw in STAGES)
    + sum((4 * STAGES[i - 1][0] * STAGES[i][0] + STAGES[i][0]) * STAGES[i][2] for i in (1, 2, 3))
    + 2 * 7 * 7 * 768 + 768 * 1000 + 1000,
}


@pytest.mark.parametrize("spec", PTFLOPS)
def test_ptflops_on_transformers(spec: str) -> None:
    assert analyze(SPECS / f"{spec}.json", convention="ptflops").totals["macs"] == PTFLOPS[spec]
    assert PTFLOPS == {"vit_b_16": 17_606_030_584, "swin_t": 3_128_183_416, "convnext_tiny": 4_488_347_368}


@pytest.mark.parametrize("spec", PTFLOPS)
def test_ptflops_tool_agrees_on_transformers(spec: str) -> None:
    """On torchvision's model and on the one built from the spec (whose multi-head attention is archcalc's subclass of
    nn.MultiheadAttention: no hook)."""
    torch = pytest.importorskip("torch")
    models = pytest.importorskip("torchvision.models")
    pytest.importorskip("ptflops")
    from archcalc.graph import compile_spec
    from archcalc.spec import load_spec
    from archcalc.torch.build import build_module

    arch = load_spec(SPECS / f"{spec}.json")
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            theirs = _peer("ptflops", getattr(models, spec)().eval(), (3, 224, 224))
            built = _peer("ptflops", build_module(compile_spec(arch)).eval(), (3, 224, 224))
    finally:
        logging.disable(logging.NOTSET)
    assert theirs == PTFLOPS[spec]
    mha = sum(r.macs for r in analyze(arch, convention="ptflops").rows if r.type == "multiheadattention")
    assert built == PTFLOPS[spec] - mha


# ----- upsampling, softmax, LeakyReLU, adaptive average pooling (review s6, finding 2) --------------------------------
# Each peer's own rule, read in its source (site-packages; the comments in archcalc/conventions.py cite the functions):
#   fvcore 0.1.5: aten::upsample_nearest2d 1 and aten::upsample_bilinear2d 4 per output element, other upsample ops
#     and aten::adaptive_avg_pool1d/3d have no handle (0), aten::adaptive_avg_pool2d 1 per input element, softmax 0;
#   thop 0.1.1: nn.Upsample per output element nearest 1, linear 5, bilinear 11, trilinear 0 (left out of its mode
#     list); nn.Softmax n exp + (n - 1) adds + n divides per softmax over n values; nn.AdaptiveAvgPoolNd
#     int((prod(in/out) + 1) x output elements) in float64; LeakyReLU 0;
#   ptflops 0.7.5: nn.Upsample twice its output elements (module hook + patched F.interpolate); nn.Softmax once per
#     element (F.softmax patched, no module hook); nn.LeakyReLU once (module hook; F.leaky_relu not patched);
#     adaptive pools twice their input elements.
CONV = {"name": "conv", "type": "conv2d", "out_channels": 4, "kernel_size": 1}
CONV_MACS = 4 * 4 * 8 * 8  # Conv2d(4, 4, 1) on 4 x 8 x 8
CONV_BIAS = 4 * 8 * 8  # ptflops adds the bias


def _up(**fields):  # type: ignore[no-untyped-def]
    return {"name": "up", "type": "upsample", **fields}


PEER_LAYER_CASES = {
    # name: (input, layers, {convention: expected MACs})
    "upsample_bilinear": ([4, 8, 8], [CONV, _up(scale_factor=2, mode="bilinear")],
                          {"fvcore": CONV_MACS + 4 * 4 * 16 * 16, "thop": CONV_MACS + 11 * 4 * 16 * 16,
                           "ptflops": CONV_MACS + CONV_BIAS + 2 * 4 * 16 * 16}),
    "upsample_nearest": ([4, 8, 8], [CONV, _up(scale_factor=2)],
                         {"fvcore": CONV_MACS + 4 * 16 * 16, "thop": CONV_MACS + 4 * 16 * 16,
                          "ptflops": CONV_MACS + CONV_BIAS + 2 * 4 * 16 * 16}),
    "upsample_bilinear_size": ([4, 8, 8], [_up(size=[5, 7], mode="bilinear")],
                               {"fvcore": 4 * 4 * 5 * 7, "thop": 11 * 4 * 5 * 7, "ptflops": 2 * 4 * 5 * 7}),
    "upsample_nearest1d": ([4, 8], [_up(scale_factor=2)], {"fvcore": 0, "thop": 4 * 16, "ptflops": 2 * 4 * 16}),
    "upsample_linear": ([4, 8], [_up(scale_factor=3, mode="linear")], {"fvcore": 0, "thop": 5 * 4 * 24, "ptflops": 2 * 4 * 24}),
    "upsample_trilinear": ([2, 3, 4, 4], [_up(scale_factor=2, mode="trilinear")],
                           {"fvcore": 0, "thop": 0, "ptflops": 2 * 2 * 6 * 8 * 8}),
    "upsample_nearest3d": ([2, 3, 4, 4], [_up(scale_factor=2)], {"fvcore": 0, "thop": 2 * 6 * 8 * 8, "ptflops": 2 * 2 * 6 * 8 * 8}),
    # one softmax over the 256 flattened values; then 64 softmaxes over the 4 channels
    "softmax_flat": ([4, 8, 8], [CONV, {"name": "flat", "type": "flatten"}, {"name": "sm", "type": "softmax", "dim": 1}],
                     {"fvcore": CONV_MACS, "thop": CONV_MACS + (256 + 255 + 256), "ptflops": CONV_MACS + CONV_BIAS + 256}),
    "softmax_channels": ([4, 8, 8], [{"name": "sm", "type": "softmax", "dim": 1}],
                         {"fvcore": 0, "thop": 8 * 8 * (4 + 3 + 4), "ptflops": 4 * 8 * 8}),
    "leakyrelu": ([4, 8, 8], [CONV, {"name": "act", "type": "leakyrelu"}],
                  {"fvcore": CONV_MACS, "thop": CONV_MACS, "ptflops": CONV_MACS + CONV_BIAS + 4 * 8 * 8}),
    # thop's fractional windows: 5 -> 3 per axis is int(((5/3)**2 + 1) * 9) = 34 (the float product, truncated);
    # 10 -> 3: int(((10/3)**2 + 1) * 9) = 109; AlexNet at 256 x 256 pools 256 x 7 x 7 to 6 x 6:
    # int(((7/6)**2 + 1) * 256 * 36) = 21,760
    "adaptive_5to3": ([1, 5, 5], [{"name": "p", "type": "adaptiveavgpool2d", "output_size": 3}],
                      {"fvcore": 25, "thop": 34, "ptflops": 2 * 25}),
    "adaptive_10to3": ([1, 10, 10], [{"name": "p", "type": "adaptiveavgpool2d", "output_size": 3}],
                       {"fvcore": 100, "thop": 109, "ptflops": 2 * 100}),
    "adaptive_alexnet_256": ([256, 7, 7], [{"name": "p", "type": "adaptiveavgpool2d", "output_size": 6}],
                             {"fvcore": 256 * 49, "thop": 21_760, "ptflops": 2 * 256 * 49}),
    # 8 -> 7: (64/49 + 1) * 49 = 113 in fractions, but thop's float product is a hair under: int() gives 112
    "adaptive_8to7": ([1, 8, 8], [{"name": "p", "type": "adaptiveavgpool2d", "output_size": 7}],
                      {"fvcore": 64, "thop": 113 - 1, "ptflops": 2 * 64}),
    # 1-D 10 -> 3: (10/3 + 1) * 4 * 3 = 52; 3-D (5, 7, 9) -> (2, 3, 4): (5/2 * 7/3 * 9/4 + 1) * 2 * 24 = 678
    "adaptive_1d": ([4, 10], [{"name": "p", "type": "adaptiveavgpool1d", "output_size": 3}], {"fvcore": 0, "thop": 52, "ptflops": 2 * 40}),
    "adaptive_3d": ([2, 5, 7, 9], [{"name": "p", "type": "adaptiveavgpool3d", "output_size": [2, 3, 4]}],
                    {"fvcore": 0, "thop": 678, "ptflops": 2 * 2 * 5 * 7 * 9}),
}


def _tool_on_spec(convention: str, arch):  # type: ignore[no-untyped-def]
    """The peer tool's own count on the torch model built from the spec (batch 1)."""
    torch = pytest.importorskip("torch")
    from archcalc import parse_spec
    from archcalc.graph import compile_spec
    from archcalc.torch.build import build_module

    G = compile_spec(parse_spec(arch))
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            return int(_peer(convention, build_module(G).eval(), tuple(G.graph["input_shape"])))
    finally:
        logging.disable(logging.NOTSET)


@pytest.mark.parametrize("convention", ["fvcore", "thop", "ptflops"])
@pytest.mark.parametrize("case", PEER_LAYER_CASES)
def test_peer_counts_of_upsample_softmax_leakyrelu_adaptive_pool(case: str, convention: str) -> None:
    shape, layers, expected = PEER_LAYER_CASES[case]
    arch = {"name": case, "input": shape, "layers": layers}
    assert analyze(arch, convention=convention).totals["macs"] == expected[convention]
    assert _tool_on_spec(convention, arch) == expected[convention]


def test_thop_fractional_windows_are_its_float_rounding() -> None:
    """The rule is thop's float64 arithmetic truncated, not the exact fraction: 5 -> 3 is 34 in fractions
    ((25/9 + 1) * 9) and in thop, but 8 -> 7 is 113 in fractions and 112 in thop (and in archcalc's thop)."""
    from fractions import Fraction

    assert (Fraction(25, 9) + 1) * 9 == 34 and (Fraction(64, 49) + 1) * 49 == 113
    one = {"name": "p", "type": "adaptiveavgpool2d", "output_size": 7}
    assert analyze({"name": "a", "input": [1, 8, 8], "layers": [one]}, convention="thop").totals["macs"] == 112


def test_thop_refuses_what_its_float_rounding_or_batch_axis_leaves_unknown() -> None:
    """A fractional window on a symbolic size (thop's float rounding depends on the value) and a softmax over
    the batch axis (thop counts per call, not per sample) are refused in one line, naming the layer type;
    the other peers still count them."""
    from archcalc.errors import SpecError

    pool = {"name": "sym", "input": ["C", "H", "W"], "layers": [{"name": "p", "type": "adaptiveavgpool2d", "output_size": 3}]}
    batch_softmax = {"name": "b", "input": [4, 6], "layers": [{"name": "sm", "type": "softmax", "dim": 0}]}
    for arch, kind in ((pool, "adaptiveavgpool2d"), (batch_softmax, "softmax")):
        with pytest.raises(SpecError, match=f"does not reproduce thop's count of layer type '{kind}'"):
            analyze(arch, convention="thop")
        assert analyze(arch, convention="ptflops").totals["macs"] != 0


def test_thop_counts_a_symbolic_global_pool() -> None:
    """Windows of the whole input divide it at any size: thop's (H*W + 1) per channel (it was a silent 0)."""
    import sympy

    arch = {"name": "g", "input": ["C", "H", "W"], "layers": [{"name": "p", "type": "adaptiveavgpool2d", "output_size": 1}]}
    C, H, W = sympy.symbols("C H W", positive=True, integer=True)
    assert sympy.simplify(analyze(arch, convention="thop").totals["macs"] - C * (H * W + 1)) == 0


@pytest.mark.parametrize("convention", ["fvcore", "thop", "ptflops"])
def test_an_imported_mean_counts_as_the_tools_count_a_mean(convention: str) -> None:
    """``x.mean((2, 3))`` imports as adaptiveavgpool2d with as_mean (built back as that mean): no peer counts it (fvcore has no aten::mean rule;
    thop and ptflops see no module, and ptflops does not patch torch.mean), where the pool module costs 8*16*16
    (fvcore), (256 + 1) * 8 (thop) or 2 * 8*16*16 (ptflops).  Conv2d(3, 8, 3, padding=1) on 3 x 16 x 16 and
    Linear(8, 4); ptflops adds their biases."""
    torch = pytest.importorskip("torch")
    from torch import nn

    from archcalc.torch.fx_import import spec_from_module

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c, self.fc = nn.Conv2d(3, 8, 3, padding=1), nn.Linear(8, 4)

        def forward(self, x):  # type: ignore[no-untyped-def]
            return self.fc(self.c(x).mean((2, 3)))

    macs = 8 * 16 * 16 * 3 * 9 + 8 * 4
    expected = macs + (8 * 16 * 16 + 4 if convention == "ptflops" else 0)
    spec = spec_from_module(Net(), (3, 16, 16))
    assert analyze(spec, convention=convention).totals["macs"] == expected
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            assert int(_peer(convention, Net().eval(), (3, 16, 16))) == expected
    finally:
        logging.disable(logging.NOTSET)
    assert _tool_on_spec(convention, spec) == expected  # the model built from the spec computes the mean too


def test_as_mean_is_a_mean_over_every_spatial_axis() -> None:
    from archcalc.errors import SpecError

    pool = {"name": "p", "type": "adaptiveavgpool2d", "output_size": 2, "as_mean": True}
    with pytest.raises(SpecError, match="output_size must be 1"):
        analyze({"name": "m", "input": [4, 6, 6], "layers": [pool]})


# ----- functions a model calls instead of modules (F.relu, x.softmax(1), torch.add) ---------------------------------
# thop 0.1.1 (profile.py) hooks modules by exact type: a function call is invisible to it, 0.  ptflops 0.7.5
# (pytorch_engine.py, patch_functional / patch_tensor_ops) replaces F.relu, F.relu6, F.gelu, F.silu, F.elu, F.prelu,
# the F pooling functions, F.softmax, F.interpolate, torch.add/mul (and Tensor.add/mul) during its run: such a call
# counts once by pytorch_ops.py's formula (the input's elements; interpolate the output's; add/mul the broadcast
# shape's), any other function (torch.relu, x.relu(), F.leaky_relu, torch.sigmoid, x.softmax(1)) 0.  fvcore counts
# aten ops, and torchinfo parameters of leaf modules: how a layer is called changes neither.
class _Functional:  # built lazily (torch is optional)
    @staticmethod
    def make():  # type: ignore[no-untyped-def]
        import torch
        import torch.nn.functional as F
        from torch import nn

        class Functional(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.conv, self.fc = nn.Conv2d(3, 4, 3, padding=1), nn.Linear(4, 2)

            def forward(self, x):  # type: ignore[no-untyped-def]
                x = self.conv(x)  # 4 x 8 x 8 = 256 elements
                x = F.relu(x) + torch.relu(x) + x.relu()
                x = F.leaky_relu(F.silu(F.gelu(x)), 0.1)
                x = F.hardswish(torch.sigmoid(x))
                x = F.max_pool2d(x, 2)  # 4 x 4 x 4
                x = F.interpolate(x, scale_factor=2)  # 4 x 8 x 8
                x = F.avg_pool2d(x, 2)  # 4 x 4 x 4
                x = F.interpolate(x, size=(6, 6), mode="bilinear")  # 4 x 6 x 6 = 144 elements
                x = torch.mul(torch.add(x, x), 0.5)
                x = torch.softmax(F.softmax(x.softmax(1), dim=1), 1)
                x = x.mean((2, 3)) + F.adaptive_avg_pool2d(x, 1).flatten(1)
                return self.fc(x)

        return Functional()


FUNCTIONAL_CONV = 4 * 8 * 8 * 3 * 3 * 3  # Conv2d(3, 4, 3, padding=1) on 3 x 8 x 8
FUNCTIONAL_FC = 4 * 2  # Linear(4, 2)
FUNCTIONAL = {
    "thop": FUNCTIONAL_CONV + FUNCTIONAL_FC,  # every function call 0
    # + the biases (256 + 2); F.relu, F.gelu, F.silu, F.max_pool2d (its input), F.interpolate (its output) and
    # F.avg_pool2d (its input) on 256 elements; F.interpolate, torch.add, torch.mul, F.softmax and F.adaptive_avg_pool2d
    # on 144; torch.relu, x.relu(), F.leaky_relu, torch.sigmoid, F.hardswish, x.softmax(1), torch.softmax, x.mean: 0
    "ptflops": FUNCTIONAL_CONV + 256 + FUNCTIONAL_FC + 2 + 6 * 256 + 5 * 144,
    # aten::upsample_nearest2d 1 per output element, upsample_bilinear2d 4, adaptive_avg_pool2d 1 per input element
    "fvcore": FUNCTIONAL_CONV + FUNCTIONAL_FC + 256 + 4 * 144 + 144,
    "torchinfo": FUNCTIONAL_CONV + 256 + FUNCTIONAL_FC + 2,  # conv weights and bias per position, linear's once
}


@pytest.mark.parametrize("convention", ["thop", "ptflops", "fvcore", "torchinfo"])
def test_functions_a_model_calls_count_as_the_peer_counts_them(convention: str) -> None:
    """The imported spec's total is the tool's on the user's model and on the model built from the spec (which makes
    the same calls).  Before the layers said how they were computed, the thop convention gave 10,160 (the modules'
    counts: upsampling 256 + 11 x 144, average pooling 64, softmax 3 x (36 x (3 x 4 - 1)), global pool (36 + 1) x 4)
    and ptflops 12,282 (what its module hooks count)."""
    torch = pytest.importorskip("torch")
    from archcalc.torch.fx_import import spec_from_module

    spec = spec_from_module(_Functional.make(), (3, 8, 8))
    assert analyze(spec, convention=convention).totals["macs"] == FUNCTIONAL[convention]
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            assert int(_peer(convention, _Functional.make().eval(), (3, 8, 8))) == FUNCTIONAL[convention]
    finally:
        logging.disable(logging.NOTSET)
    assert _tool_on_spec(convention, spec) == FUNCTIONAL[convention]


def test_an_imported_layer_says_which_function_computed_it() -> None:
    """``function`` is written where a peer counts the call otherwise than the module (F.silu: ptflops counts the
    module's own F.silu call once, like the user's; torch.sigmoid, F.hardswish: 0 either way), and every 0 a peer
    gives such a layer is said on its row; verify matches the spec against the user's model and the built one."""
    pytest.importorskip("torch")
    from archcalc.torch.fx_import import spec_from_module
    from archcalc.torch.verify import verify_spec

    model = _Functional.make()
    spec = spec_from_module(model, (3, 8, 8))
    function = {d["name"]: d.get("function") for d in spec["layers"]}
    assert function["relu"] == "F.relu" and function["relu_1"] == "torch.relu" and function["relu_2"] == "Tensor.relu"
    assert function["softmax"] == "Tensor.softmax" and function["add_2"] == "torch.add" and function["mul"] == "torch.mul"
    assert function["silu"] is None and function["sigmoid"] is None and function["hardswish"] is None
    assert function["add"] is None and function["mean"] is None  # a + b, x.mean: no peer counts them, as modules either
    thop = {r.name: r for r in analyze(spec, convention="thop").rows}
    assert thop["relu"].macs == 0 and "thop counts 0" in (thop["relu"].note or "")
    ptflops = {r.name: r for r in analyze(spec, convention="ptflops").rows}
    assert ptflops["relu"].macs == 256 and "patches F.relu" in (ptflops["relu"].note or "")
    assert ptflops["relu_2"].macs == 0 and "ptflops counts 0" in (ptflops["relu_2"].note or "")
    assert analyze(spec).rows[1].note is None  # the lecture convention counts the operation, however it is called
    assert verify_spec(spec).ok and verify_spec(spec, model, (3, 8, 8)).ok
    from archcalc import parse_spec
    from archcalc.graph import compile_spec
    from archcalc.torch.build import build_module

    back = spec_from_module(build_module(compile_spec(parse_spec(spec))), (3, 8, 8))  # the built model, imported again
    assert {d["name"]: d.get("function") for d in back["layers"]} == function


def test_a_function_the_built_model_cannot_call_is_an_error_naming_the_layer() -> None:
    pytest.importorskip("torch")
    from archcalc import parse_spec
    from archcalc.errors import SpecError
    from archcalc.graph import compile_spec
    from archcalc.torch.build import build_module

    def build(layer: dict[str, object]) -> None:
        build_module(compile_spec(parse_spec({"name": "f", "input": [4, 8, 8], "layers": [layer]})))

    with pytest.raises(SpecError, match=r"layer 'p'.*field 'function'.*'F\.no_such_pool' is not a function archcalc knows"):
        build({"name": "p", "type": "maxpool2d", "kernel_size": 2, "function": "F.no_such_pool"})
    with pytest.raises(SpecError, match=r"layer 'p'.*F\.relu computes a relu layer, not a maxpool2d"):
        build({"name": "p", "type": "maxpool2d", "kernel_size": 2, "function": "F.relu"})
    with pytest.raises(SpecError, match="function"):
        parse_spec({"name": "f", "input": [4, 8, 8], "layers": [{"name": "r", "type": "relu", "function": "relu(x)"}]})


# The zoo specs of torchvision's models say which layers torchvision computes with a function (as_mean, "function"):
# ShuffleNet v2's x.mean([2, 3]) (shufflenetv2.py, _forward_impl); MobileNet v2's F.adaptive_avg_pool2d; DenseNet's
# final F.relu and F.adaptive_avg_pool2d (densenet.py, DenseNet.forward); Inception v3's BasicConv2d F.relu and its
# blocks' F.avg_pool2d / F.max_pool2d (inception.py; the auxiliary head's pools too, training only).  Without that the
# peer conventions counted the modules: the pools' and ReLUs' counts below were added.
_POOL_1024 = 1024 * 7 * 7  # a global pool's input elements at 7 x 7
# Inception v3's functional pools: avg over Mixed_5b-d's 192, 256, 288 channels at 35 x 35, Mixed_6b-e's 4 x 768 at
# 17 x 17, Mixed_7b-c's 1280 and 2048 at 8 x 8 (thop counts an avg pool's outputs: the same, stride 1 and padding 1);
# max over Mixed_6a's 288 x 35 x 35 and Mixed_7a's 768 x 17 x 17 (inputs; thop: 0)
_INCEPTION_AVG = (192 + 256 + 288) * 35 * 35 + 4 * 768 * 17 * 17 + (1280 + 2048) * 8 * 8
_INCEPTION_MAX = 288 * 35 * 35 + 768 * 17 * 17
ZOO_FUNCTIONS = {  # spec: (input, {convention: what counting the modules added})
    "shufflenet_v2_x1_0": ((3, 224, 224), {"fvcore": _POOL_1024, "thop": (49 + 1) * 1024, "ptflops": 2 * _POOL_1024}),
    "mobilenet_v2": ((3, 224, 224), {"thop": (49 + 1) * 1280, "ptflops": 1280 * 7 * 7}),  # pool twice, where the call counts once
    "densenet121": ((3, 224, 224), {"thop": (49 + 1) * 1024, "ptflops": _POOL_1024 + _POOL_1024}),  # the ReLU and the pool once more
    # the ReLUs' elements (8,967,488: every BasicConv2d's output, summed by the test) once more, and the pools' inputs
    "inception_v3": ((3, 299, 299), {"thop": _INCEPTION_AVG, "ptflops": _INCEPTION_AVG + _INCEPTION_MAX}),
}


@pytest.mark.parametrize("convention", ["fvcore", "thop", "ptflops", "torchinfo"])
@pytest.mark.parametrize("spec", ZOO_FUNCTIONS)
def test_zoo_specs_of_torchvision_models_count_as_the_peers_do_on_them(spec: str, convention: str) -> None:
    torch = pytest.importorskip("torch")
    tv_models = pytest.importorskip("torchvision.models")
    import json

    shape, added = ZOO_FUNCTIONS[spec]
    arch = json.loads((SPECS / f"{spec}.json").read_text())
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            kwargs = {"init_weights": False} if spec == "inception_v3" else {}
            measured = int(_peer(convention, getattr(tv_models, spec)(**kwargs).eval(), shape))
    finally:
        logging.disable(logging.NOTSET)
    assert analyze(arch, convention=convention).totals["macs"] == measured
    relus = sum(r.ops["act"] for r in analyze(arch).counted_rows if r.type == "relu" and spec == "inception_v3")
    assert relus in (0, 8_967_488)
    for entry in [*arch["layers"], *(x for b in arch.get("blocks", {}).values() for x in b["layers"])]:
        entry.pop("as_mean", None)
        entry.pop("function", None)
    assert analyze(arch, convention=convention).totals["macs"] == measured + added.get(convention, 0) + (relus if convention == "ptflops" else 0)


def test_thop_counts_any_function_zero_where_ptflops_still_refuses() -> None:
    """thop hooks torch.nn classes only, which import never traces into: a function is 0 for it wherever the model calls
    it, so the layer types the thop convention refuses as modules (matmul, scaled_dot_product_attention, groupnorm,
    mean) count 0 as functions.  ptflops also hooks classes import traces into (timm's Attention): a function inside one
    may be that hook's, so its refusals stand (one line naming the layer).  Tokens 6 x 8: qkv Linear(8, 24) and head
    Linear(8, 3) are all thop counts."""
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F
    from torch import nn

    from archcalc.errors import SpecError
    from archcalc.torch.fx_import import spec_from_module

    class Attention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.qkv, self.head = nn.Linear(8, 24), nn.Linear(8, 3)

        def forward(self, x):  # type: ignore[no-untyped-def]
            q, k, v = self.qkv(x).chunk(3, dim=-1)
            a = F.softmax(torch.matmul(q, k.transpose(-2, -1)), dim=-1)
            y = F.group_norm(torch.matmul(a, v) + F.scaled_dot_product_attention(q, k, v), 2)
            return self.head(y.mean(1))

    spec = spec_from_module(Attention(), (6, 8))
    expected = 6 * 8 * 24 + 8 * 3
    assert analyze(spec, convention="thop").totals["macs"] == expected
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            assert int(_peer("thop", Attention().eval(), (6, 8))) == expected
    finally:
        logging.disable(logging.NOTSET)
    assert _tool_on_spec("thop", spec) == expected
    with pytest.raises(SpecError, match=r"layer 'matmul'.*does not reproduce ptflops's count of layer type 'matmul'"):
        analyze(spec, convention="ptflops")


def test_ptflops_counts_a_layer_scale_called_as_tensor_mul() -> None:
    """``x.mul(gamma.reshape(1, -1, 1, 1))`` (timm's ConvNeXt block): ptflops' Tensor.mul patch counts the broadcast
    shape's elements, 4 x 4 x 4 after Conv2d(3, 4, 1) on 3 x 4 x 4 (4*3 MACs per output + the bias).  The model built
    from the spec multiplies by a gamma of x's rank too: ptflops aligns the shapes on the left, so a (4, 1, 1) gamma would
    count 4 x 4 x 4 x 4 there (it did: timm's convnext_tiny built back gave 4,997,847,016 against 4,479,767,272)."""
    torch = pytest.importorskip("torch")
    from torch import nn

    from archcalc.torch.fx_import import spec_from_module

    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.gamma = nn.Conv2d(3, 4, 1), nn.Parameter(torch.ones(4))

        def forward(self, x):  # type: ignore[no-untyped-def]
            return self.conv(x).mul(self.gamma.reshape(1, -1, 1, 1))

    spec = spec_from_module(Scaled(), (3, 4, 4))
    assert [d.get("function") for d in spec["layers"]] == [None, "Tensor.mul"]
    expected = {"ptflops": 4 * 4 * 4 * 3 + 4 * 4 * 4 + 4 * 4 * 4, "thop": 4 * 4 * 4 * 3}
    for convention, macs in expected.items():
        assert analyze(spec, convention=convention).totals["macs"] == macs
        logging.disable(logging.CRITICAL)
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                assert int(_peer(convention, Scaled().eval(), (3, 4, 4))) == macs
        finally:
            logging.disable(logging.NOTSET)
        assert _tool_on_spec(convention, spec) == macs
