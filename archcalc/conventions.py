"""Named counting conventions: which operations count as a MAC, and what a FLOP is.

Every layer reports its operations by category (``Layer.ops``; categories in
``archcalc.layers.base.OP_CATEGORIES``).  A convention is the one place that decides which
categories are MACs.  Tools disagree on the same network because each silently picks a different
rule; archcalc names the rule on every row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .dims import Dim
from .errors import SpecError


@dataclass(frozen=True)
class Convention:
    name: str
    description: str
    counts: Mapping[str, int] = field(default_factory=dict)
    """Category -> MACs per counted operation; ``"category/layertype"`` overrides it for one layer type
    (tools differ per module: ptflops counts ReLU but not Tanh).  Absent categories count zero."""
    flops_per_mac: int = 2
    refuses: frozenset[str] = frozenset()
    """Layer types whose count by the tool this convention reproduces is not modelled: asking is an
    error, never a silent guess."""
    functions: Mapping[str, Mapping[str, int]] | None = None
    """For a tool that counts modules (forward hooks by exact class), what it counts for a layer the model computes
    with a function call instead (the layer's ``function``): category -> MACs per operation, for each function the
    tool patches; every other function is invisible to it and counts 0.  None: the tool counts what runs (aten ops)
    or the convention is a rule of its own, so how the layer is called changes nothing."""
    hooks_traced_modules: bool = False
    """The tool also hooks module classes outside torch.nn (ptflops: timm's Attention, torchvision's DeformConv2d),
    which archcalc import traces into: a function called inside one may be counted by that module's hook instead, so a
    function layer of a type in ``refuses`` stays refused.  (thop hooks torch.nn classes only, which import never traces
    into: a function is 0 for it wherever it is called, whatever the layer type.)"""

    def weight(self, category: str, kind: str = "", function: str | None = None) -> int:
        """MACs per operation of ``category`` in a layer of type ``kind`` (called as ``function``, if it is)."""
        if function is not None and self.functions is not None:
            return self.functions.get(function, {}).get(category, 0)
        return self.counts.get(f"{category}/{kind}", self.counts.get(category, 0))

    def function_note(self, function: str | None) -> str | None:
        """What a row computed by ``function`` says under this convention (its count is not the module's)."""
        if function is None or self.functions is None:
            return None
        if function in self.functions:
            return f"called as {function}: {self.name} counts the call (it patches {function}), not the module"
        return f"called as {function}: {self.name} counts 0 (it sees modules{' and the functions it patches' if self.functions else ''} only)"

    def macs(self, ops: Mapping[str, Dim], kind: str = "", function: str | None = None) -> Dim:
        # the layer says: not in this configuration (OP_CATEGORIES); a marker is about the module's count, not a call's
        as_module = function is None or self.functions is None
        marked = bool(ops.get(f"{self.name}_unmodelled")) and as_module
        if (kind in self.refuses and (as_module or self.hooks_traced_modules)) or marked:
            how = " configured so (see the README's conventions)" if marked else ""
            raise SpecError(
                f"the {self.name!r} convention does not reproduce {self.name}'s count of layer type {kind!r}{how}; "
                "use 'torch', 'lecture' or 'fvcore' (which do)",
                field="--convention",
            )
        total: Dim = 0
        for category, n in ops.items():
            w = self.weight(category, kind, function)
            if w:
                total = total + w * n
        return total

    def flops(self, macs: Dim) -> Dim:
        return self.flops_per_mac * macs


# layer types with arithmetic whose count by torchinfo, ptflops and thop is not reproduced (issue 11):
# torchinfo counts a parameter-holding module's parameters once per sample (nn.MultiheadAttention 0),
# ptflops has its own attention formula and counts LayerNorm without its affine part, thop counts
# nn.LayerNorm but not its subclasses (torchvision's LayerNorm2d) and attention 0 (see the README)
NOT_REPRODUCED = frozenset(
    {"layernorm", "groupnorm", "multiheadattention", "scaled_dot_product_attention", "matmul", "layerscale", "mean",
     "shiftedwindowattention"}  # (thop: 0 for torchvision's ShiftedWindowAttention, no rule for it)
    | {"embedding", "rmsnorm", "rotary"}  # (the language-model layers: not checked against those tools either)
)

# thop 0.1.1 on transformer layers (measured on torchvision's vit_b_16, swin_t and convnext_tiny, and on
# the models built from those specs): nn.LayerNorm 2 per element, 4 when affine (its count_normalization);
# nn.MultiheadAttention 0 (no rule, and its out_proj is called functionally); torchvision's
# ShiftedWindowAttention 0 (no rule: its projections are F.linear calls); GELU, layer scale, stochastic
# depth, permutes and slices 0.  (It counts ConvNeXt's LayerNorm2d, a subclass it has no rule for, as 0:
# the spec's layernorm is an nn.LayerNorm, so the convention reproduces thop on the spec's model.)
THOP_REPRODUCED = frozenset({"layernorm", "multiheadattention", "shiftedwindowattention", "layerscale"})

# torchinfo 1.8 (ModelStatistics: leaf modules only; LayerInfo.calculate_macs: a conv's weight and bias per
# output position, any other leaf's weight and bias once per sample): measured on torchvision's vit_b_16,
# swin_t and convnext_tiny.  nn.MultiheadAttention and ShiftedWindowAttention have submodules (out_proj,
# qkv, proj), so count 0, and so do those submodules, never called as modules; a layer scale or a class
# token is a parameter of a module with submodules (CNBlock, VisionTransformer): 0.
TORCHINFO_REPRODUCED = frozenset({"layernorm", "multiheadattention", "shiftedwindowattention", "layerscale"})

# ptflops 0.7.5, pytorch backend (pytorch_ops.py: MODULES_MAPPING by exact type, FUNCTIONAL_MAPPING and
# TENSOR_OPS_MAPPING patched during the run): nn.LayerNorm by its batchnorm hook, one per element (the hook
# doubles for an 'affine' attribute, which LayerNorm does not have); nn.MultiheadAttention by its own
# formula; torchvision's ShiftedWindowAttention has no hook, and of what it calls only Tensor.matmul (q k^T,
# attn v) and F.softmax are patched (F.linear is not: its projections count 0).  Layer scale is a '*'
# (not patched): 0.  Measured on torchvision's vit_b_16, swin_t and convnext_tiny.
PTFLOPS_REPRODUCED = frozenset({"layernorm", "multiheadattention", "shiftedwindowattention", "layerscale"})

# ptflops 0.7.5, pytorch backend (pytorch_engine.py: patch_functional and patch_tensor_ops replace these attributes of
# torch.nn.functional, torch and torch.Tensor during the run, so a model's own call of one counts once, by
# pytorch_ops.py's FUNCTIONAL_MAPPING / TENSOR_OPS_MAPPING formula, per call; F.linear's patch is commented out there):
# _numel_functional_flops_hook, the input's elements, for the activations, softmax and pooling; for F.interpolate,
# _interpolate_functional_flops_hook: prod(size) x N x C, or the input's elements x the scale per axis (archcalc's scales
# are integers: the output's elements either way); _elementwise_tensor_flops_hook for torch.add / torch.mul and their
# methods, the broadcast shape's elements (the output's; its shapes are aligned on the left, so that holds for operands
# of one rank, which is assumed: a spec does not say the rank a model gave a broadcast operand).  Any other function
# (torch.relu, x.relu(), F.leaky_relu, F.hardswish, x.mean(), F.layer_norm, F.linear, a + b) is invisible to it: 0.
# (matmul is refused by type anyway.)
PTFLOPS_FUNCTIONS: dict[str, dict[str, int]] = {
    **{f"F.{f}": {"act": 1} for f in ("relu", "relu6", "gelu", "silu", "elu", "prelu")},
    **{f"F.{p}{n}d": {"pool_in": 1} for n in (1, 2, 3)
       for p in ("max_pool", "avg_pool", "adaptive_avg_pool", "adaptive_max_pool")},
    "F.softmax": {"softmax": 1},
    "F.interpolate": {"upsample_out": 1},
    "F.upsample": {"upsample_out": 2},  # it calls interpolate, a global of torch.nn.functional that is patched too
    **{f: {"add": 1} for f in ("torch.add", "Tensor.add")},
    **{f: {"mul": 1, "scale": 1} for f in ("torch.mul", "Tensor.mul")},
}

# torchinfo and thop count a transposed convolution with the plain conv formula on its output grid
TRANSPOSED_ON_OUTPUT_GRID = {**{f"mac/convtranspose{n}d": 0 for n in (1, 2, 3)}, "mac_outgrid": 1}

CONVENTIONS: dict[str, Convention] = {
    c.name: c
    for c in (
        Convention(
            "lecture",
            "The lecture tables' rule: MACs of conv/linear = output elements x (C_in/groups x k_h x k_w) "
            "or in_features, bias not counted; matmul and attention's two products = output elements x the "
            "contracted size; pooling (and a mean) = output elements x window size; activations, softmax, "
            "normalisation, layer scale and adds not counted. FLOPs = 2 x MACs.",
            {"mac": 1, "matmul": 1, "attn_matmul": 1, "attn_matmul_masked": 1, "pool": 1, "mean": 1},
        ),
        Convention(
            "torch",
            "What torch.utils.flop_counter.FlopCounterMode reports, halved into MACs: conv, linear, "
            "matmul/bmm and scaled_dot_product_attention multiply-accumulates only (no bias, pooling, mean, "
            "normalisation incl. layernorm, softmax, activations, layer scale or adds). FLOPs = 2 x MACs.",
            {"mac": 1, "matmul": 1, "attn_matmul": 1, "attn_matmul_masked": 1},
        ),
        # Peer tools' "MACs"/"FLOPs" totals, each reproduced from the tool's own counting rules.
        # The ResNet-50 figures quoted were measured with each tool at 224x224 (batch 1).
        Convention(
            "torchinfo",
            "torchinfo 1.8 'Mult-Adds': for convolutions, every weight and bias element once per output "
            "position (conv MACs + conv bias adds); for every other module with parameters and no submodules, each "
            "parameter once per sample, however many tokens it runs on (linear weight + bias, batchnorm's and "
            "layernorm's affine parameters); a module with submodules counts nothing of its own "
            "(nn.MultiheadAttention, torchvision's ShiftedWindowAttention: 0). Pooling, activations, layer scale "
            "and adds are not counted; a transposed conv counts its weights once per output position. "
            "ResNet-50: 4,089,238,376; ViT-B/16: 173,232,616.",
            {"mac": 1, "bias": 1, "affine_params": 1, **TRANSPOSED_ON_OUTPUT_GRID, "mac/linear": 0, "linear_params": 1,
             "mac/multiheadattention": 0, "mac/shiftedwindowattention": 0},
            refuses=NOT_REPRODUCED - TORCHINFO_REPRODUCED,
        ),
        Convention(
            "fvcore",
            "fvcore 0.1.5 FlopCountAnalysis (it calls multiply-adds 'flops'): conv and linear MACs without "
            "bias (nn.MultiheadAttention's projections included); batchnorm at inference one op per element, two "
            "when affine; layer and group norm 4 per element, 5 when affine; matmul; 2-D adaptive average pooling one "
            "op per input element (1-D, 3-D and a model's x.mean: 0); 2-D nearest upsampling 1 and bilinear 4 per output "
            "element (other upsampling 0); scaled_dot_product_attention (so attention's products), max pooling, mean, "
            "softmax, activations, layer scale and adds not counted. ResNet-50: 4,111,512,576; ViT-B/16: "
            "16,867,412,736 (no attention).",
            {"mac": 1, "norm": 1, "norm_affine": 1, "avgpool_in": 1, "matmul": 1, "attn_matmul_masked/matmul": 1,  # aten::matmul in full
             "layernorm": 4, "layernorm_affine": 1, "groupnorm": 4, "groupnorm_affine": 1,
             # fvcore/nn/flop_count.py, _DEFAULT_SUPPORTED_OPS: elementwise_flop_counter(0, 1) and (0, 4) per output
             # element; no handle for the other upsample ops (nearest 1-D/3-D, linear, trilinear): 0
             "upsample_nearest2d": 1, "upsample_bilinear2d": 4,
             # nor for aten::adaptive_avg_pool1d and 3d (only adaptive_avg_pool2d: elementwise_flop_counter(1, 0)): 0
             "avgpool_in/adaptiveavgpool1d": 0, "avgpool_in/adaptiveavgpool3d": 0},
        ),
        Convention(
            "ptflops",
            "ptflops 0.7.5, pytorch backend (it calls multiply-adds 'MACs'): conv MACs + bias, linear MACs + "
            "bias, batchnorm one per element (two when affine); ReLU and GELU one per "
            "output element, pooling one per input element and upsampling one per output element, each counted twice (once by the module hook, "
            "once by its patch of the torch.nn.functional call the module makes); ReLU6 once (it calls "
            "F.hardtanh, which ptflops does not patch), LeakyReLU once (F.leaky_relu is not patched); SiLU and softmax "
            "once (functional only); a model's x.mean 0; "
            "Tanh, Sigmoid, Hardswish not at all; LRN through its functional internals (three elementwise ops "
            "per element plus the padded average pool's input); in-place adds not counted. A layer the model computes with a "
            "function (its 'function' field) counts what ptflops' patch of that function counts, once: F.relu, F.gelu, F.silu, "
            "F.relu6, the F pooling functions and F.softmax their input's elements, F.interpolate and torch.add/mul their "
            "output's; any other function (torch.relu, x.softmax(), a + b) 0. ResNet-50: 4,132,436,968.",
            {"mac": 1, "bias": 1, "linear_bias": 1, "norm": 1, "norm_affine": 1, "pool_in": 2, "lrn_functional": 1,
             # pytorch_ops.py: nn.LeakyReLU's module hook (relu_flops_counter_hook), F.leaky_relu not patched: once
             **{f"act/{t}": 2 for t in ("relu", "gelu")}, "act/leakyrelu": 1, "act/relu6": 1, "act/silu": 1,
             "layernorm": 1, "mac/shiftedwindowattention": 0, "matmul/shiftedwindowattention": 1, "softmax/shiftedwindowattention": 1,
             "attn_matmul/multiheadattention": 1, "softmax/multiheadattention": 1, "mha_ptflops": 1,
             # pytorch_ops.py: nn.Softmax has no module hook, F.softmax is patched (_numel_functional_flops_hook): once;
             # nn.Upsample: upsample_flops_counter_hook (output elements) + the patched F.interpolate
             # (_interpolate_functional_flops_hook: output elements for integer sizes or scales): twice
             "softmax/softmax": 1, "upsample_out": 2},
            refuses=NOT_REPRODUCED - PTFLOPS_REPRODUCED,
            functions=PTFLOPS_FUNCTIONS,
            hooks_traced_modules=True,  # pytorch_ops.py: MODULES_MAPPING[timm's Attention], [torchvision.ops.DeformConv2d]
        ),
        Convention(
            "thop",
            "thop 0.1.1 profile ('MACs'): conv and linear MACs without bias, batchnorm 2 ops per element "
            "(4 when affine), layernorm the same, average pooling one per output element, adaptive average pooling (window + 1) "
            "per output element (float64 and truncated, as thop does, for fractional windows), upsampling per output "
            "element nearest 1, linear 5, bilinear 11, trilinear 0, softmax over n values 3n - 1, transposed conv by the "
            "conv formula on its output grid; ReLU, LeakyReLU, GELU, max pooling, LRN, "
            "a model's x.mean, layer scale and adds are zero, and so are nn.MultiheadAttention and torchvision's ShiftedWindowAttention "
            "(projections and attention: no rule for them); a layer the model computes with a function (its 'function' field) 0, "
            "as thop sees modules only. ResNet-50: 4,133,742,592; ViT-B/16: 11,286,254,592.",
            {"mac": 1, "norm": 2, "norm_affine": 2, "avgpool_thop": 1, **{f"pool_out/avgpool{n}d": 1 for n in (1, 2, 3)},
             **TRANSPOSED_ON_OUTPUT_GRID, "layernorm": 2, "layernorm_affine": 2, "mac/multiheadattention": 0,
             "mac/shiftedwindowattention": 0, "softmax_thop": 1,
             # vision/calc_func.py, calculate_upsample (via basic_hooks.py, count_upsample): per output element, nearest 1,
             # linear 5, bilinear 11; trilinear 0 (count_upsample's mode list leaves it out)
             **{f"upsample_nearest{n}d": 1 for n in (1, 2, 3)}, "upsample_linear1d": 5, "upsample_bilinear2d": 11},
            refuses=NOT_REPRODUCED - THOP_REPRODUCED,
            functions={},  # profile.py: forward hooks on the modules whose exact type it has a rule for; a function call: 0
        ),
        Convention(
            "kaplan",
            "Kaplan et al. 2020 ('Scaling laws for neural language models', Table 1): the weighted layers' "
            "multiply-adds (2N FLOPs per token for N weights) and causal attention over the kept triangle only "
            "(query i reads i + 1 keys; the paper's 2*n_layer*n_ctx*d_attn FLOPs per token is this on average, "
            "with n_ctx/2 for (i + 1)); the masked scores, biases, normalisation, softmax and activations not counted. "
            "FLOPs = 2 x MACs.",
            {"mac": 1, "matmul": 1, "attn_matmul": 1},
        ),
    )
}


def get_convention(name: str) -> Convention:
    try:
        return CONVENTIONS[name]
    except KeyError:
        raise SpecError(f"unknown convention {name!r}; choose from {', '.join(CONVENTIONS)}", field="--convention") from None


DTYPE_BYTES: dict[str, int] = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "int8": 1}


# what people write for a dtype elsewhere (numpy, torch.half, CUDA): said back as archcalc's name, not taken silently
DTYPE_WORDS = {"fp16": "float16", "half": "float16", "f16": "float16", "fp32": "float32", "float": "float32", "single": "float32",
               "f32": "float32", "bf16": "bfloat16", "fp64": "float64", "double": "float64", "f64": "float64", "i8": "int8"}  # fmt: skip


def dtype_bytes(name: str) -> int:
    try:
        return DTYPE_BYTES[name]
    except KeyError:
        word = str(name).strip().lower().removeprefix("torch.")
        near = word if word in DTYPE_BYTES else DTYPE_WORDS.get(word)  # (no spelling guess: float8 is a dtype, not a slip for float64)
        hint = f"; did you mean {near!r}?" if near else ""
        raise SpecError(f"unknown dtype {name!r}{hint} (archcalc's dtypes: {', '.join(DTYPE_BYTES)})", field="--dtype") from None
