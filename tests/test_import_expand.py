"""``archcalc import`` of ``x.expand(...)`` and ``x.expand_as(y)`` of an ordinary tensor (session 10).

An expand broadcasts the axes of 1 of ``x`` to larger sizes (torch.Tensor.expand: "-1 keeps the size; a singleton
dimension expands to a larger size"), a view of copies.  Before, import read every expand as ``x`` itself: the copies
were lost wherever anything but a broadcasting op read them (``x[:, :, :1].expand(b, c, h, w).flatten(1)`` on a
(3, 5, 5) input imported as 3 x 1 x 5 = 15 features, torch has 3 x 5 x 5 = 75; exit 0).  Now an expand that changes only
the batch axis is ``x`` (per sample nothing changes: a class token over the batch), an expand that makes copies within a
sample is read as ``x`` only by an elementwise op whose other operand already has the expanded size on every widened axis
(then broadcasting gives the same output, squeeze-and-excitation's ``x * s.expand_as(x)``), and any other reader is
refused in one line naming it and the expand (archcalc has no layer that makes the copies).

``cls_token.repeat(B, 1, 1)`` (or ``torch.tile``) of a parameter with a leading 1 writes the same values as
``expand(B, -1, -1)``: read so (before: refused, the batch axis must be repeated once).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from conftest import cli  # noqa: E402
from torch import nn  # noqa: E402

from archcalc import analyze  # noqa: E402
from archcalc.errors import SpecError  # noqa: E402
from archcalc.spec import parse_spec  # noqa: E402
from archcalc.torch.fx_import import spec_from_module  # noqa: E402
from archcalc.torch.verify import verify_spec  # noqa: E402


class SlicedExpand(nn.Module):
    """The first row of each channel copied to every row, then flattened: torch's output is (N, 3 * 5 * 5)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        return x[:, :, :1].expand(b, c, h, w).flatten(1).relu()


class ExpandTimesSmall(nn.Module):
    """``y.expand_as(x) * z`` with z as small as y: torch's product has x's shape, (N, 3, 5, 5)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.mean((2, 3), keepdim=True)
        return y.expand_as(x) * y


class UnsqueezeExpand(nn.Module):
    """``x.unsqueeze(2)`` of a (3, 1, 5) map, expanded along the old axis of 1 (not the new one): (N, 3, 1, 4, 5)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, _, w = x.shape
        return x.unsqueeze(2).expand(b, c, 1, 4, w).flatten(1)


def sliced_expand() -> nn.Module:
    return SlicedExpand()


def test_torch_shapes_of_the_repros() -> None:
    """What torch computes, the numbers the refusals below stand for."""
    assert SlicedExpand()(torch.randn(2, 3, 5, 5)).shape == (2, 3 * 5 * 5)
    assert ExpandTimesSmall()(torch.randn(2, 3, 5, 5)).shape == (2, 3, 5, 5)
    assert UnsqueezeExpand()(torch.randn(2, 3, 1, 5)).shape == (2, 3 * 1 * 4 * 5)


def test_an_expand_read_by_a_flatten_is_refused_not_read_as_its_input(tmp_path: Path) -> None:
    """Before: imported as slice (3, 1, 5), flatten (15,), relu, exit 0 (torch: 75)."""
    with pytest.raises(SpecError, match=r"node 'flatten' \(call_method Tensor.flatten\) has no archcalc layer type: reads "
                                        r"'getitem\S*' of shape \(N, 3, 1, 5\) expanded to \(N, 3, 5, 5\) \(node 'expand'\)"):
        spec_from_module(SlicedExpand(), (3, 5, 5))
    r = cli("import", "test_import_expand:sliced_expand", "--input", "3x5x5", "-o", str(tmp_path / "x.json"))
    assert r.code == 2 and not r.out and len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err, r.err
    assert "has no layer that makes the copies" in r.err and not (tmp_path / "x.json").exists()


def test_an_expand_times_a_small_tensor_is_refused() -> None:
    """Before: mul of (3, 1, 1) and (3, 1, 1), output (3, 1, 1), exit 0 (torch: (3, 5, 5))."""
    with pytest.raises(SpecError, match=r"node 'mul' .*: mul of 'mean' of shape \(N, 3, 1, 1\) expanded to \(N, 3, 5, 5\) \(node "
                                        r"'expand_as'\) and the tensor 'mean': archcalc has no layer that makes the expand's copies"):
        spec_from_module(ExpandTimesSmall(), (3, 5, 5))


def test_an_unsqueeze_expanded_along_another_axis_keeps_its_copies() -> None:
    """Before: read as the unsqueeze's reshape, (3, 1, 1, 5), flattened to 15 features (torch: 3 x 1 x 4 x 5 = 60)."""
    with pytest.raises(SpecError, match=r"node 'flatten' .*: reads '\S+' of shape \(N, 3, 1, 1, 5\) expanded to \(N, 3, 1, 4, 5\)"):
        spec_from_module(UnsqueezeExpand(), (3, 1, 5))


class Gate(nn.Module):
    """Squeeze-and-excitation's gate spelled with expand: ``s.expand(b, c, h, w) * x`` (gate first) and
    ``x + s.expand_as(x)``, x of the full shape: broadcasting gives the same output as ``s * x``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        b, c, h, w = x.shape
        s = x.mean((2, 3), keepdim=True).sigmoid()
        return (s.expand(b, c, h, w) * x) + s.expand_as(x)


def test_an_expand_read_by_an_elementwise_op_of_the_full_shape_imports_and_verifies() -> None:
    spec = spec_from_module(Gate(), (3, 6, 6))
    assert [lay["type"] for lay in spec["layers"]] == ["conv2d", "adaptiveavgpool2d", "sigmoid", "mul", "add"]
    rep = analyze(parse_spec(spec))
    assert rep.rows[-1].output_shape == tuple(Gate()(torch.randn(1, 3, 6, 6)).shape[1:]) == (4, 6, 6)
    assert rep.totals["params"] == 3 * 4 * 3 * 3 + 4  # the conv's weights and biases
    r = verify_spec(spec, Gate())
    assert r.ok, r.failure_message()


class ClassToken(nn.Module):
    """ViT's class token: a (1, 1, D) parameter expanded over the batch, ``expand(b, -1, -1)``, put before the patches."""

    def __init__(self) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, 8))
        self.proj = nn.Linear(6, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        return torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)


def test_an_expand_over_the_batch_only_is_the_tensor_itself() -> None:
    spec = spec_from_module(ClassToken(), (5, 6))
    assert [(lay["type"], lay.get("shape")) for lay in spec["layers"]] == [("linear", None), ("parameter", [1, 8]), ("concat", None)]
    rep = analyze(parse_spec(spec))
    assert rep.rows[-1].output_shape == tuple(ClassToken()(torch.randn(2, 5, 6)).shape[1:]) == (1 + 5, 8)
    assert rep.totals["params"] == 6 * 8 + 8 + 8  # the linear's, and the token's 8
    r = verify_spec(spec, ClassToken())
    assert r.ok, r.failure_message()


@pytest.mark.parametrize(
    ("sizes", "why"),
    [
        ((2, -1, -1, -1), r"keeps the batch axis"),  # a fixed batch of 2
        ((-1, 3, 5, 5, 5), r"keeps the axes"),  # a new axis in front of the batch
        ((-1, 4, -1, -1), r"axis 1 of size 3 is not 1 and cannot expand"),
    ],
)
def test_other_expands_are_refused(sizes: tuple[int, ...], why: str) -> None:
    class Net(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.expand(*sizes).relu()

    with pytest.raises(SpecError, match=why):
        spec_from_module(Net(), (3, 1, 5))


def test_an_expand_that_keeps_every_size_is_the_tensor_itself() -> None:
    class Net(nn.Module):
        def forward(self, x: torch.Tensor) -> Any:
            b, _, h, w = x.shape
            return x.expand(b, -1, h, w).flatten(1)

    spec = spec_from_module(Net(), (3, 4, 5))
    assert [lay["type"] for lay in spec["layers"]] == ["flatten"]
    assert analyze(parse_spec(spec)).rows[-1].output_shape == (3 * 4 * 5,)


class RepeatedToken(nn.Module):
    """A class token copied over the batch by ``repeat(B, 1, 1)`` (or ``tile``) instead of ``expand(B, -1, -1)``: torch
    writes B copies where expand makes a view, the same (B, 1, D) values; ``per_sample`` more copies along the tokens."""

    def __init__(self, how: str = "repeat", per_sample: int = 1, token: tuple[int, ...] = (1, 1, 8)) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(*token))
        self.proj = nn.Linear(6, 8)
        self.how, self.per_sample = how, per_sample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        b = x.shape[0]
        if self.how == "repeat":
            tok = self.cls_token.repeat(b, self.per_sample, 1)
        elif self.how == "tile":
            tok = torch.tile(self.cls_token, (b, self.per_sample, 1))
        else:  # the batch of a batched tensor: B x B samples
            tok = x[:, :1].repeat(b, 1, 1)
        return torch.cat([tok, x], dim=1)


@pytest.mark.parametrize("how", ["repeat", "tile"])
def test_a_class_token_repeated_over_the_batch_is_read_as_expanded(how: str) -> None:
    """Before: refused, "repeat by (N, 1, 1): archcalc reads whole-number counts of at least 1 and the batch axis kept"."""
    spec = spec_from_module(RepeatedToken(how), (5, 6))
    assert spec["layers"] == spec_from_module(ClassToken(), (5, 6))["layers"]  # linear, parameter (1, 8), concat
    rep = analyze(parse_spec(spec))
    assert rep.rows[-1].output_shape == tuple(RepeatedToken(how)(torch.randn(2, 5, 6)).shape[1:]) == (1 + 5, 8)
    assert rep.totals["params"] == 6 * 8 + 8 + 8  # the linear's, and the token's 8
    r = verify_spec(spec, RepeatedToken(how))
    assert r.ok, r.failure_message()


def test_a_class_token_repeated_over_the_batch_and_the_tokens() -> None:
    """``repeat(B, 2, 1)``: the token over the batch, and 2 copies of it along the tokens (a concat, as any tile)."""
    spec = spec_from_module(RepeatedToken(per_sample=2), (5, 6))
    assert [lay["type"] for lay in spec["layers"]] == ["linear", "parameter", "concat", "concat"]
    rep = analyze(parse_spec(spec))
    assert rep.rows[-1].output_shape == tuple(RepeatedToken(per_sample=2)(torch.randn(2, 5, 6)).shape[1:]) == (2 + 5, 8)
    r = verify_spec(spec, RepeatedToken(per_sample=2))
    assert r.ok, r.failure_message()


@pytest.mark.parametrize(
    ("model", "why"),
    [
        (RepeatedToken("batched"), r"repeat by \(N, 1, 1\): archcalc reads whole-number counts of at least 1 and the batch axis kept"),
        (RepeatedToken(token=(2, 1, 8)), r"repeat by \(N, 1, 1\) of the parameter 'cls_token' of shape \(2, 1, 8\): archcalc reads a "
                                         r"repeat over the batch only of a leading axis of 1"),
    ],
)
def test_other_repeats_over_the_batch_are_refused(model: nn.Module, why: str) -> None:
    with pytest.raises(SpecError, match=why):
        spec_from_module(model, (5, 6))
