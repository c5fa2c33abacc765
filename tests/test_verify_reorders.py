"""verify --module reads every spelling of an axis reorder in a model's own code, and wires it as the spec layer it is
paired with (review s10 #2 and #7).

#2: ``x.movedim``, ``torch.einsum("bchw->bwhc", x)`` and ``x.mT.movedim(1, 3)`` swap H and W as ``x.permute(0, 3, 2, 1)``
does, but only permute/transpose/swapaxes/swapdims were read: the spec's permutes stayed "not compared" and verify said
OK for a model whose second conv reads a 3x3 field where the spec's reads 1x5 (review s9 #7's repro).
#7: a functional transpose applied on the other branch was paired with the spec's by count and axes, then looked
through as a view, so the layer reading the transposed tensor was never checked (the model's field 3x5, the spec's 5x3).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from test_verify_settings import PERM_SPEC  # noqa: E402
from torch import nn  # noqa: E402

from archcalc.torch.measure import reorder_of  # noqa: E402
from archcalc.torch.verify import verify_spec  # noqa: E402


def _wrong(spec: dict[str, Any], model: nn.Module) -> dict[tuple[str, str], tuple[Any, Any]]:
    result = verify_spec(spec, model)
    return {(r.name, r.quantity): (r.analytic, r.measured) for lc in result.layers for r in lc.rows if not r.ok}


# ----- #2: the spellings of a reorder ----------------------------------------------------------------------------------
# PERM_SPEC: review s9 #7's spec (/tmp/r10/keep/perm.json): c1 [1, 3] -> permute (0, 2, 3, 1) -> linear -> permute (0, 3, 1, 2)
# -> c2 [1, 3]
SPEC_P1 = "(0, 2, 3, 1)"  # N x C x H x W -> N x H x W x C
SWAPPED = "(0, 3, 2, 1)"  # N x C x H x W -> N x W x H x C: H and W trade places (c2's field 3x3, not 1x5: review s9 #7)

Reorder = Callable[[Any], Any]
# the first reorder of each model (the second is x.permute(0, 3, 1, 2) as in the spec), /tmp/r10/keep/perms.py and more
SWAPS: dict[str, Reorder] = {
    "movedim": lambda x: x.movedim((1, 2, 3), (3, 2, 1)),  # axis 1 to 3, 3 to 1: (0, 3, 2, 1)
    "torch.moveaxis": lambda x: torch.moveaxis(x, 1, 3).transpose(1, 2),  # (0, 2, 3, 1), then H and W swapped
    "mT.movedim": lambda x: x.mT.movedim(1, 3),  # (0, 1, 3, 2) then C to the end: (0, 3, 2, 1)
    "transpose.contiguous.permute": lambda x: x.transpose(2, 3).contiguous().permute(0, 2, 3, 1),  # perms.py's Rearr
    "einsum sublists": lambda x: torch.einsum(x, [0, 1, 2, 3], [0, 3, 2, 1]),
    "einsum ellipsis": lambda x: torch.einsum("...chw->...whc", x),
    "rot90": lambda x: torch.rot90(x, 1, (2, 3)).permute(0, 2, 3, 1),  # a quarter turn swaps H and W (and flips one)
}
SAME: dict[str, Reorder] = {
    "movedim": lambda x: x.movedim(1, -1),  # channels last, the common spelling
    "einsum": lambda x: torch.einsum("bchw->bhwc", x),
    "two transposes": lambda x: x.transpose(1, 2).transpose(2, 3),  # (0, 2, 1, 3) then (0, 1, 3, 2): (0, 2, 3, 1)
    "mT.mT.permute": lambda x: x.mT.mT.permute(0, 2, 3, 1),  # a transpose undone is no reorder
    "rot90 twice": lambda x: torch.rot90(x, 2, (2, 3)).permute(0, 2, 3, 1),  # a half turn reorders no axes
}


class _Perm(nn.Module):
    def __init__(self, first: Reorder, second: Reorder | None = None) -> None:
        super().__init__()
        self.c1, self.lin, self.c2 = nn.Conv2d(4, 4, (1, 3), padding=(0, 1)), nn.Linear(4, 4), nn.Conv2d(4, 4, (1, 3), padding=(0, 1))
        self.first, self.second = first, second or (lambda x: x.permute(0, 3, 1, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c2(self.second(self.lin(self.first(self.c1(x)))))


@pytest.mark.parametrize("how", list(SWAPS))
def test_every_spelling_of_a_swap_of_h_and_w_is_a_mismatch(how: str) -> None:
    # was OK (exit 0): the call was not read, so p1 and p2 were "not compared" (counts 1 or 0 against the spec's 2)
    assert _wrong(PERM_SPEC, _Perm(SWAPS[how])) == {("p1", "axes"): (SPEC_P1, SWAPPED)}


def test_einsum_permutes_both_ways() -> None:
    # perms.py's Einsum: "bchw->bwhc" there (H and W swapped) and "bwhc->bchw" back (its inverse, also (0, 3, 2, 1))
    model = _Perm(lambda x: torch.einsum("bchw->bwhc", x), lambda x: torch.einsum("bwhc->bchw", x))
    assert _wrong(PERM_SPEC, model) == {("p1", "axes"): (SPEC_P1, SWAPPED), ("p2", "axes"): ("(0, 3, 1, 2)", SWAPPED)}


@pytest.mark.parametrize("how", list(SAME))
def test_the_spec_s_reorder_spelled_otherwise_is_ok(how: str) -> None:
    result = verify_spec(PERM_SPEC, _Perm(SAME[how]))
    assert result.ok, result.render_text()
    assert [lc.name for lc in result.not_compared] == []  # p1 and p2 compared, each with an ok row
    assert "permuted axes" in result.summary()


def test_an_einsum_that_reorders_and_multiplies_is_not_read_and_never_ok() -> None:
    # "bchw,bchw->bwhc" (x * x with H and W swapped) reorders, but is no permute: p1 says its axes could not be read
    result = verify_spec(PERM_SPEC, _Perm(lambda x: torch.einsum("bchw,bchw->bwhc", x, x)))
    p1 = next(lc for lc in result.layers if lc.name == "p1")
    assert not p1.rows and "could not be read" in (p1.note or ""), p1
    assert "p1" in [lc.name for lc in result.not_compared]


def test_reorder_of_reads_where_each_axis_comes_from() -> None:
    x = torch.zeros(2, 3, 4, 5)  # distinct sizes: the output's shape shows where each of its axes came from
    calls: list[tuple[Any, tuple[Any, ...], Any]] = [
        (torch.Tensor.movedim, (x, (1, 2, 3), (3, 2, 1)), x.movedim((1, 2, 3), (3, 2, 1))),
        (torch.movedim, (x, 1, -1), torch.movedim(x, 1, -1)),
        (torch.Tensor.moveaxis, (x, 3, 0), x.moveaxis(3, 0)),
        (torch.Tensor.mT.__get__, (x,), x.mT),
        (torch.Tensor.mH.__get__, (x,), x.mH),
        (torch.Tensor.adjoint, (x,), x.adjoint()),
        (torch.Tensor.T.__get__, (x[0, 0],), x[0, 0].T),
        (torch.Tensor.t, (x[0, 0],), x[0, 0].t()),
        (torch.einsum, ("bchw->bwhc", x), torch.einsum("bchw->bwhc", x)),
        (torch.einsum, ("b c h w -> b h w c", [x]), torch.einsum("b c h w -> b h w c", [x])),
        (torch.einsum, ("nchw", x), torch.einsum("nchw", x)),  # implicit output: the letters in order, c h n w
        (torch.einsum, ("...hw->...wh", x), torch.einsum("...hw->...wh", x)),
        (torch.einsum, (x, [0, 1, 2, 3], [0, 3, 2, 1]), torch.einsum(x, [0, 1, 2, 3], [0, 3, 2, 1])),
        (torch.rot90, (x, 1, (2, 3)), torch.rot90(x, 1, (2, 3))),
        (torch.Tensor.permute, (x, 0, 2, 3, 1), x.permute(0, 2, 3, 1)),
        (torch.swapdims, (x, 1, 3), torch.swapdims(x, 1, 3)),
    ]
    for func, args, out in calls:
        got = reorder_of(func, args, {})
        assert got is not None and got[1] is not None, (func, args)
        src = next(a if isinstance(a, torch.Tensor) else a[0] for a in args if not isinstance(a, str))  # the tensor reordered
        assert tuple(src.shape[a] for a in got[1]) == tuple(out.shape), (func, args, got)
    # reorders no axis: a product or contraction that keeps each operand's axes in order (q @ k^T written as einsum),
    # an identity einsum, a half turn, a transpose of a vector
    for func, args in [(torch.einsum, ("bhid,bhjd->bhij", x, x)), (torch.einsum, ("bchw", x)), (torch.einsum, ("bchw->bc", x)),
                       (torch.rot90, (x, 2, (2, 3))), (torch.Tensor.t, (x[0, 0, 0],)), (torch.Tensor.contiguous, (x,))]:
        assert reorder_of(func, args, {}) is None, (func, args)
    # reorders, but is no permute: read as a reorder whose axes are not known
    for args in [("bchw,bchw->bwhc", x, x), ("bchw->bwh", x), ("bchw,cd->bwhd", x, torch.zeros(3, 6))]:
        assert reorder_of(torch.einsum, args, {}) == ("einsum", None), args


# ----- #7: a reorder paired with a spec layer is that layer's output in the wiring ------------------------------------
# /tmp/r10/keep/br2.json: the transpose before c2 (p1) and after it (q1); c3 on c1 directly
BR2_SPEC = {"name": "br2", "input": [1, 9, 9], "layers": [
    {"name": "c1", "type": "conv2d", "out_channels": 1, "kernel_size": 1},
    {"name": "p1", "type": "transpose", "dim0": 2, "dim1": 3, "inputs": ["c1"]},
    {"name": "c2", "type": "conv2d", "out_channels": 1, "kernel_size": [1, 5], "padding": [0, 2], "inputs": ["p1"]},
    {"name": "q1", "type": "transpose", "dim0": 2, "dim1": 3, "inputs": ["c2"]},
    {"name": "c3", "type": "conv2d", "out_channels": 1, "kernel_size": [1, 3], "padding": [0, 1], "inputs": ["c1"]},
    {"name": "add", "type": "add", "inputs": ["q1", "c3"]}]}


class _Br2(nn.Module):
    """/tmp/r10/keep/brm2.py.  ``swap``: the first transpose on c3's input instead of c2's.  torch's jacobian of the
    output at (4, 4): the spec's model reads rows 2..6, cols 3..5 (5x3: c2's 1x5 along H, c3's 1x3 along W); the
    swapped one rows 3..5, cols 2..6 (3x5), with the same shapes, params and MACs."""

    def __init__(self, swap: bool) -> None:
        super().__init__()
        self.c1, self.c2, self.c3 = nn.Conv2d(1, 1, 1), nn.Conv2d(1, 1, (1, 5), padding=(0, 2)), nn.Conv2d(1, 1, (1, 3), padding=(0, 1))
        self.swap = swap

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.c1(x)
        if self.swap:
            return self.c2(y).transpose(2, 3) + self.c3(y.transpose(2, 3))
        return self.c2(y.transpose(2, 3)).transpose(2, 3) + self.c3(y)


def test_a_transpose_on_the_other_branch_is_a_mismatch() -> None:
    # was OK (exit 0): p1 and q1 paired with the model's two transposes by order and axes, then looked through as views
    assert _wrong(BR2_SPEC, _Br2(swap=False)) == {}
    # the model's two transposes have the same axes: each stands for the spec's one whose input is its input (the one of
    # c1's output for p1, of c2's for q1), so the layers reading them are the ones that differ
    assert _wrong(BR2_SPEC, _Br2(swap=True)) == {("c2", "inputs"): ("p1", "c1"),  # c2 reads c1's output itself (the fix)
                                                 ("c3", "inputs"): ("c1", "p1")}  # and c3 the transpose of it


# /tmp/r10/keep/br.json: one transpose, before c2 in the spec
BR_SPEC = {"name": "br", "input": [4, 8, 8], "layers": [
    {"name": "c1", "type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
    {"name": "p1", "type": "transpose", "dim0": 2, "dim1": 3, "inputs": ["c1"]},
    {"name": "c2", "type": "conv2d", "out_channels": 4, "kernel_size": [1, 3], "padding": [0, 1], "inputs": ["p1"]},
    {"name": "c3", "type": "conv2d", "out_channels": 4, "kernel_size": [1, 3], "padding": [0, 1], "inputs": ["c1"]},
    {"name": "add", "type": "add", "inputs": ["c2", "c3"]}]}


class _Br(nn.Module):
    """/tmp/r10/keep/brm.py: ``swap`` transposes c3's input instead of c2's (Swap and Swap2 there)."""

    def __init__(self, swap: bool) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(4, 4, 3, padding=1)
        self.c2, self.c3 = nn.Conv2d(4, 4, (1, 3), padding=(0, 1)), nn.Conv2d(4, 4, (1, 3), padding=(0, 1))
        self.swap = swap

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.c1(x)
        return self.c2(y) + self.c3(y.transpose(2, 3)) if self.swap else self.c2(y.transpose(2, 3)) + self.c3(y)


def test_one_transpose_on_the_other_branch_is_a_mismatch() -> None:
    assert _wrong(BR_SPEC, _Br(swap=False)) == {}
    assert _wrong(BR_SPEC, _Br(swap=True)) == {("c2", "inputs"): ("p1", "c1"), ("c3", "inputs"): ("c1", "p1")}
    result = verify_spec(BR_SPEC, _Br(swap=False))
    assert "p1" not in [lc.name for lc in result.not_compared]
    assert "inputs" in next(lc for lc in result.layers if lc.name == "p1").compared  # the transpose's own input: c1


def test_a_chain_of_spec_reorders_is_compared_as_one() -> None:
    # the spec's p1 written as two transposes in a row, the model's as one permute: one reorder (0, 2, 3, 1) either way
    spec = {**PERM_SPEC, "layers": [PERM_SPEC["layers"][0], {"name": "t1", "type": "transpose", "dim0": 1, "dim1": 2},
                                    {"name": "t2", "type": "transpose", "dim0": 2, "dim1": 3}, *PERM_SPEC["layers"][2:]]}
    result = verify_spec(spec, _Perm(lambda x: x.permute(0, 2, 3, 1)))
    assert result.ok and "permuted axes" in result.summary(), result.render_text()
    assert _wrong(spec, _Perm(SWAPS["movedim"])) == {("t2", "axes"): (SPEC_P1, SWAPPED)}


def _qkv_spec(order: str) -> dict[str, Any]:
    """q, k, v linears, then their transposes (1, 2) listed in ``order``, then attention of the three."""
    layers: list[dict[str, Any]] = [{"name": n, "type": "linear", "out_features": 8, "inputs": ["input"]} for n in "qkv"]
    layers += [{"name": f"{n}t", "type": "transpose", "dim0": 1, "dim1": 2, "inputs": [n]} for n in order]
    layers.append({"name": "att", "type": "scaled_dot_product_attention", "inputs": ["qt", "kt", "vt"]})
    return {"name": "qkv", "input": [4, 6, 8], "layers": layers}


class _Qkv(nn.Module):
    """Transposes q, k and v in ``order`` (nanoGPT makes k's first); ``of`` names the linear each one transposes."""

    def __init__(self, order: str, of: str = "qkv") -> None:
        super().__init__()
        self.q, self.k, self.v = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 8)
        self.order, self.of = order, dict(zip("qkv", of, strict=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        made = {n: getattr(self, n)(x) for n in "qkv"}
        t = {n: made[self.of[n]].transpose(1, 2) for n in self.order}
        return nn.functional.scaled_dot_product_attention(t["q"], t["k"], t["v"])


@pytest.mark.parametrize(("spec_order", "model_order"), [("qkv", "qkv"), ("vqk", "qkv"), ("qkv", "kqv")])
def test_reorders_alike_are_paired_by_what_they_read_not_by_call_order(spec_order: str, model_order: str) -> None:
    # the same transpose of other tensors: which is which follows the wiring (no false mismatch from the new wiring check)
    result = verify_spec(_qkv_spec(spec_order), _Qkv(model_order))
    assert result.ok, result.render_text()
    assert all("inputs" in lc.compared for lc in result.layers if lc.name in ("qt", "kt", "vt"))


def test_reorders_alike_still_compare_their_inputs() -> None:
    # k's transpose made of q's linear: no pairing makes kt read k
    wrong = _wrong(_qkv_spec("qkv"), _Qkv("qkv", of="qqv"))
    assert wrong == {("kt", "inputs"): ("k", "q")}
