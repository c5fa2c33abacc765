"""Every torchvision classifier, and a set of timm models, imported (``archcalc import``) and then
verified (``archcalc verify --module``) exactly: output shape, params and MACs per layer and in total.

The models are built with ``weights=None`` / ``pretrained=False`` (no download), their parameters
on the ``meta`` device (no memory, no initialisation: :func:`meta_parameters`), and measured there
(FlopCounterMode reads shapes only).  A model that does not import and verify is listed in
:data:`TORCHVISION_REFUSED` / :data:`TIMM_REFUSED` with the reason (the README's import section
lists the same), and the test checks that it still fails the way the list says, so neither list
goes stale.  The bar (issue 11): at least 95% of torchvision's classifiers, ViT, Swin, ConvNeXt,
EfficientNet v1 and v2 and MaxViT among them; at least 20 of the 25 timm models.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import pytest

torch = pytest.importorskip("torch")
tv_models = pytest.importorskip("torchvision.models")
from torch import nn  # noqa: E402

from archcalc.errors import SpecError  # noqa: E402
from archcalc.torch.importer import spec_from_module  # noqa: E402
from archcalc.torch.verify import verify_spec  # noqa: E402

TORCHVISION = sorted(tv_models.list_models(module=tv_models))
TORCHVISION_INPUT = {"inception_v3": (3, 299, 299)}
"""Per-sample input; 3 x 224 x 224 otherwise (the size torchvision's docs give for each model)."""
TORCHVISION_REFUSED: dict[str, str] = {}
"""Model -> the start of the one-line refusal it gets (README: "What import refuses")."""

TIMM = [
    "resnet50", "efficientnet_b0", "convnext_tiny", "regnety_008", "mobilenetv3_large_100", "vit_tiny_patch16_224",
    "deit_tiny_patch16_224", "swin_tiny_patch4_window7_224", "densenet121", "inception_v4", "xception41", "ghostnet_100", "mixnet_s",
    "rexnet_100", "dla34", "cspresnet50", "repvgg_a0", "levit_128s", "mobilevit_s", "coat_lite_tiny", "efficientformer_l1",
    "poolformer_s12", "edgenext_small", "fastvit_t8", "hrnet_w18_small",
]
TIMM_REFUSED: dict[str, str] = {
    # Swin's window partition folds the windows into the batch axis (timm's is plain code, not fx-wrapped)
    "swin_tiny_patch4_window7_224": "node 'view_1' (call_method Tensor.view) has no archcalc layer type: reshape to (-1, 7, 7, 96)",
    # LeViT's attention subsampling flattens the batch axis with the tokens
    "levit_128s": "node 'flatten_1' (call_method Tensor.flatten): flatten layer 'stages.0.blocks.0.attn.qkv.flatten': start_dim 0..end_dim 1",
    # MobileViT's unfold folds the patches into the batch axis (reshape(B * C * patch_h, ...))
    "mobilevit_s": "node 'mul_3' (call_function operator.mul) has no archcalc layer type: arithmetic on the batch size",
    # CoaT pads the token axis of (B, heads, N, d) by one (the class token's slot)
    "coat_lite_tiny": "node 'pad' (call_function torch.nn.functional.pad) has no archcalc layer type: padding (0, 0, 1, 0, 0, 0)",
    # EdgeNeXt builds its positional encoding from torch.zeros in forward (a constant tensor)
    "edgenext_small": "node 'zeros' (call_function torch.zeros) has no archcalc layer type",
}


@contextlib.contextmanager
def meta_parameters() -> Iterator[None]:
    """Build a model with every parameter and buffer on the ``meta`` device.

    ``with torch.device("meta")`` would put the constructor's own arithmetic there too, and
    torchvision's RegNet computes its widths with torch ops it then reads back (``.tolist()``,
    which meta tensors cannot do); moving each tensor as it is registered keeps that arithmetic on
    the CPU and allocates nothing for the weights."""
    register_parameter, register_buffer = nn.Module.register_parameter, nn.Module.register_buffer

    def parameter(self: nn.Module, name: str, param: Any) -> None:
        if param is not None:
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        register_parameter(self, name, param)

    def buffer(self: nn.Module, name: str, tensor: Any, persistent: bool = True) -> None:
        register_buffer(self, name, None if tensor is None else tensor.to("meta"), persistent)

    nn.Module.register_parameter, nn.Module.register_buffer = parameter, buffer  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        nn.Module.register_parameter, nn.Module.register_buffer = register_parameter, register_buffer  # type: ignore[method-assign]


def import_and_verify(model: nn.Module, shape: tuple[int, ...]) -> str | None:
    """None when the model imports and verifies exactly; else the one-line reason."""
    try:
        spec = spec_from_module(model, shape)
    except SpecError as e:
        text = str(e)
        assert "\n" not in text and "Unusable" not in text and "Attr(" not in text, text  # one line, no internal object
        return text
    result = verify_spec(spec, module=model, input_shape=shape)
    if not result.ok:
        return "verify: " + result.failure_message(3).replace("\n", " ")
    # exact means every compared value agreed and the totals too
    assert result.totals.ok
    return None


def _check(name: str, refused: dict[str, str], build: Any, shape: tuple[int, ...] | None = None) -> None:
    with meta_parameters():
        model = build()
    if shape is None:  # timm: the input size its config gives
        shape = tuple(model.pretrained_cfg["input_size"])
    start = time.perf_counter()
    why = import_and_verify(model, shape)
    took = time.perf_counter() - start
    if name in refused:
        assert why is not None and why.startswith(refused[name]), f"{name} now gives: {why}"
    else:
        assert why is None, f"{name}: {why}"
    assert took < 120, f"{name}: import and verify took {took:.0f} s"


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_classifier_imports_and_verifies(name: str) -> None:
    kwargs: dict[str, Any] = {"weights": None}
    if name in ("googlenet", "inception_v3"):
        kwargs["init_weights"] = False
    _check(name, TORCHVISION_REFUSED, lambda: tv_models.get_model(name, **kwargs), TORCHVISION_INPUT.get(name, (3, 224, 224)))


def test_the_torchvision_bar() -> None:
    """Issue 11: at least 95% of torchvision's classifiers, and every one of these families."""
    assert len(TORCHVISION) >= 80
    assert len(TORCHVISION) - len(TORCHVISION_REFUSED) >= 0.95 * len(TORCHVISION)
    for family in ("vit_", "swin_", "convnext_", "efficientnet_b", "efficientnet_v2_", "maxvit_"):
        members = [m for m in TORCHVISION if m.startswith(family)]
        assert members and not set(members) & set(TORCHVISION_REFUSED), family


@pytest.mark.parametrize("name", TIMM)
def test_timm_model_imports_and_verifies(name: str) -> None:
    timm = pytest.importorskip("timm")
    _check(name, TIMM_REFUSED, lambda: timm.create_model(name, pretrained=False))


def test_the_timm_bar() -> None:
    assert len(TIMM) == 25 and len(TIMM) - len(TIMM_REFUSED) >= 20
