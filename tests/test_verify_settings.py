"""verify --module compares the settings that no torch count shows but that change an archcalc figure (review s8 #3).

A softmax over channels passed a model whose softmax runs over W (same shapes, no params, torch MACs 0 either way),
though thop's count and the receptive field differ; a dropout with p = 0 passed nn.Dropout(0.5), though training
keeps a mask for the one and nothing for the other.  The same holds for a norm's axes and groups, LRN's window,
attention's dropout and a drop-path's probability: each is compared, as the module holds it and as the function call
passes it.  (A select's index or a slice's start is not recorded from a model's own code: such a layer is listed as
"not compared", which tests/test_torch_verify.py checks.)
"""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from archcalc import analyze  # noqa: E402
from archcalc.torch.verify import verify_spec  # noqa: E402
from archcalc.training import training_memory  # noqa: E402


def _wrong(spec: dict[str, Any], model: nn.Module) -> dict[tuple[str, str], tuple[Any, Any]]:
    result = verify_spec(spec, model)
    return {(r.name, r.quantity): (r.analytic, r.measured) for lc in result.layers for r in lc.rows if not r.ok}


class _Softmax(nn.Module):
    """/tmp/r8/vm.py's SM: conv 3->4 (3x3, pad 1), a softmax over W (dim -1 of N x C x H x W), conv 4->4 (3x3, pad 1)."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.c1, self.sm, self.c2 = nn.Conv2d(3, 4, 3, padding=1), nn.Softmax(dim=-1), nn.Conv2d(4, 4, 3, padding=1)
        self.how = how

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.c1(x)
        y = self.sm(y) if self.how == "module" else F.softmax(y, -1) if self.how == "F" else y.softmax(dim=3)
        return self.c2(y)


def _softmax_spec(dim: int) -> dict[str, Any]:
    return {"name": "sm", "input": [3, 8, 8], "layers": [
        {"name": "c1", "type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
        {"name": "sm", "type": "softmax", "dim": dim},
        {"name": "c2", "type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1}]}


@pytest.mark.parametrize("how", ["module", "F", "method"])
def test_verify_compares_the_softmax_axis(how: str) -> None:
    model = _Softmax(how)
    assert _wrong(_softmax_spec(1), model) == {("sm", "dim"): (1, 3)}  # over channels in the spec, over W (-1 of 4-D) in torch
    assert _wrong(_softmax_spec(3), model) == {}
    assert _wrong(_softmax_spec(-1), model) == {}  # -1 of a batched 4-D tensor is 3
    # why it matters: thop counts 3n - 1 per softmax of n values (thop/vision/basic_hooks.py, count_softmax):
    # over C = 4, 8*8 softmaxes of 4: 64 * 11 = 704; over W = 8, 4*8 softmaxes of 8: 32 * 23 = 736
    over_c, over_w = (analyze(_softmax_spec(d), convention="thop") for d in (1, 3))
    assert over_w.totals["macs"] - over_c.totals["macs"] == 32 * (3 * 8 - 1) - 64 * (3 * 4 - 1)
    # and the second conv's field: 3x3 after 3x3 is 5x5, but a softmax over W reads the whole row of 8 (5 x (8 + 2))
    assert over_c.row("c2").receptive_field == (5, 5)
    assert over_w.row("c2").receptive_field != (5, 5)


class _Dropout(nn.Module):
    def __init__(self, functional: bool) -> None:
        super().__init__()
        self.fc1, self.d, self.fc2, self.functional = nn.Linear(8, 16), nn.Dropout(0.5), nn.Linear(16, 4), functional

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc1(x)
        return self.fc2(F.dropout(y, 0.5, self.training) if self.functional else self.d(y))


def _dropout_spec(p: float) -> dict[str, Any]:
    return {"name": "d", "input": [8], "layers": [{"name": "fc1", "type": "linear", "out_features": 16},
                                                  {"name": "d", "type": "dropout", "p": p},
                                                  {"name": "fc2", "type": "linear", "out_features": 4}]}


@pytest.mark.parametrize("functional", [False, True])
def test_verify_compares_the_dropout_probability(functional: bool) -> None:
    assert _wrong(_dropout_spec(0.0), _Dropout(functional)) == {("d", "p"): (0.0, 0.5)}
    assert _wrong(_dropout_spec(0.5), _Dropout(functional)) == {}
    # why it matters: with p > 0 training keeps the mask, one float32 per element on the CPU (16 * 4 bytes a sample)
    kept = [training_memory(_dropout_spec(p)).totals["saved_bytes"] for p in (0.0, 0.5)]
    assert kept[1] - kept[0] == 16 * 4


class _Norms(nn.Module):
    """A LayerNorm over H x W (no affine: no params show it), a GroupNorm of 2 groups (no affine), an LRN of size 3."""

    def __init__(self, functional: bool) -> None:
        super().__init__()
        self.c = nn.Conv2d(4, 4, 1)  # (a parameter before the norms: training keeps what they save)
        self.ln, self.gn, self.lrn = nn.LayerNorm((8, 8), elementwise_affine=False), nn.GroupNorm(2, 4, affine=False), nn.LocalResponseNorm(3)
        self.functional = functional

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.c(x)
        if self.functional:
            return self.lrn(F.group_norm(F.layer_norm(x, (8, 8)), 2))
        return self.lrn(self.gn(self.ln(x)))


def _norm_spec(ln: Any, groups: int, size: int) -> dict[str, Any]:
    return {"name": "n", "input": [4, 8, 8], "layers": [
        {"name": "c", "type": "conv2d", "out_channels": 4, "kernel_size": 1},
        {"name": "ln", "type": "layernorm", **({"normalized_shape": ln} if ln is not None else {}), "elementwise_affine": False},
        {"name": "gn", "type": "groupnorm", "num_groups": groups, "affine": False},
        {"name": "lrn", "type": "localresponsenorm", "size": size}]}


@pytest.mark.parametrize("functional", [False, True])
def test_verify_compares_the_norms_axes_groups_and_window(functional: bool) -> None:
    model = _Norms(functional)
    assert _wrong(_norm_spec([8, 8], 2, 3), model) == {}
    # a LayerNorm over W only (the spec's default: the last axis), 4 groups, an LRN of 5: same shapes, no params either way
    assert _wrong(_norm_spec(None, 4, 5), model) == {("ln", "normalized_shape"): ((8,), (8, 8)), ("gn", "num_groups"): (4, 2),
                                                      ("lrn", "size"): (5, 3)}
    # why it matters: a LayerNorm keeps one mean and one 1/std (float32) per normalized row (torch's native_layer_norm
    # saves mean and rstd): over W alone 4 * 8 rows (C x H), over H x W 4 (C)
    over_w, over_hw = (training_memory(_norm_spec(ln, 2, 3)).totals["saved_bytes"] for ln in (None, [8, 8]))
    assert over_w - over_hw == 2 * (4 * 8 - 4) * 4


class _Attention(nn.Module):
    def __init__(self, p: float) -> None:
        super().__init__()
        self.qkv, self.p = nn.Linear(4, 12), p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).split(4, dim=-1)
        return F.scaled_dot_product_attention(q, k, v, dropout_p=self.p)


def _attention_spec(p: float) -> dict[str, Any]:
    return {"name": "a", "input": [8, 4], "layers": [
        {"name": "qkv", "type": "linear", "out_features": 12},
        {"name": "q", "type": "slice", "dim": -1, "start": 0, "end": 4, "inputs": ["qkv"]},
        {"name": "k", "type": "slice", "dim": -1, "start": 4, "end": 8, "inputs": ["qkv"]},
        {"name": "v", "type": "slice", "dim": -1, "start": 8, "end": 12, "inputs": ["qkv"]},
        {"name": "att", "type": "scaled_dot_product_attention", "dropout_p": p, "inputs": ["q", "k", "v"]}]}


def test_verify_compares_attention_dropout() -> None:
    assert _wrong(_attention_spec(0.0), _Attention(0.1)) == {("att", "dropout_p"): (0.0, 0.1)}
    assert _wrong(_attention_spec(0.1), _Attention(0.1)) == {}
    # a model that passes dropout_p only in training (nanoGPT: `self.dropout if self.training else 0`) shows 0 to the
    # eval forward verify runs: not read as a setting, so a spec's 0.1 is not called wrong
    assert _wrong(_attention_spec(0.1), _Attention(0.0)) == {}
    spec = {"name": "m", "input": [5, 8], "layers": [{"name": "m", "type": "multiheadattention", "num_heads": 2,
                                                      "batch_first": True, "dropout": 0.0}]}

    class _MHA(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = nn.MultiheadAttention(8, 2, dropout=0.1, batch_first=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.m(x, x, x, need_weights=False)[0]

    assert _wrong(spec, _MHA()) == {("m", "dropout"): (0.0, 0.1)}


def test_verify_compares_a_drop_paths_probability_and_mode() -> None:
    tv = pytest.importorskip("torchvision.ops")
    timm_layers = pytest.importorskip("timm.layers")

    class _Branch(nn.Module):
        def __init__(self, drop: nn.Module) -> None:
            super().__init__()
            self.fc, self.drop = nn.Linear(8, 8), drop

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.drop(self.fc(x))

    def spec(kind: str, p: float, mode: str = "row") -> dict[str, Any]:
        return {"name": "b", "input": [8], "layers": [{"name": "fc", "type": "linear", "out_features": 8},
                                                      {"name": "drop", "type": kind, "p": p, "mode": mode},
                                                      {"name": "add", "type": "add", "inputs": ["input", "drop"]}]}

    sd = _Branch(tv.StochasticDepth(0.1, "row"))
    assert _wrong(spec("stochasticdepth", 0.1), sd) == {}
    assert _wrong(spec("stochasticdepth", 0.0), sd) == {("drop", "p"): (0.0, 0.1)}
    assert _wrong(spec("stochasticdepth", 0.1, "batch"), sd) == {("drop", "drop_mode"): ("batch", "row")}
    dp = _Branch(timm_layers.DropPath(0.2))  # timm holds drop_prob, and drops per sample
    assert _wrong(spec("droppath", 0.2), dp) == {}
    assert _wrong(spec("droppath", 0.0), dp) == {("drop", "p"): (0.0, 0.2)}


def test_verify_compares_batchnorm_statistics_and_a_window_shift() -> None:
    """A BatchNorm without running statistics normalizes with the batch's own at inference too (every position reads
    all of them: a whole field) and holds no buffers; a Swin window's shift moves which positions each output reads."""
    bn = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4, track_running_stats=False))
    spec = {"name": "bn", "input": [3, 8, 8], "layers": [{"name": "0", "type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
                                                        {"name": "1", "type": "batchnorm2d"}]}
    assert _wrong(spec, bn) == {("1", "track_running_stats"): (True, False)}
    # why: running_mean and running_var (4 each) and num_batches_tracked (one int64) are buffers only with running statistics
    assert analyze(spec).row("1").buffers != 0
    tv = pytest.importorskip("torchvision.models.swin_transformer")
    swa = nn.Sequential()
    swa.add_module("a", tv.ShiftedWindowAttention(32, [4, 4], [2, 2], 2))
    swa_spec = {"name": "s", "input": [8, 8, 32], "layers": [{"name": "a", "type": "shiftedwindowattention", "num_heads": 2,
                                                              "window_size": 4, "shift_size": 0}]}
    assert _wrong(swa_spec, swa) == {("a", "shift_size"): ((0, 0), (2, 2))}
    assert _wrong({**swa_spec, "layers": [{**swa_spec["layers"][0], "shift_size": 2}]}, swa) == {}


# ----- review s9 #7: the axes a model permutes, outside its modules, against the spec's permute/transpose -----
PERM_SPEC = {"name": "perm", "input": [4, 8, 8], "layers": [
    {"name": "c1", "type": "conv2d", "out_channels": 4, "kernel_size": [1, 3], "padding": [0, 1]},
    {"name": "p1", "type": "permute", "dims": [0, 2, 3, 1]},
    {"name": "lin", "type": "linear", "out_features": 4},
    {"name": "p2", "type": "permute", "dims": [0, 3, 1, 2]},
    {"name": "c2", "type": "conv2d", "out_channels": 4, "kernel_size": [1, 3], "padding": [0, 1]}]}


class _Permutes(nn.Module):
    """The spec above; ``swap``: its first permute written x.permute(0, 3, 2, 1), so H and W trade places between c1 and c2
    (same shapes, params and MACs on an 8x8 map; c2's field 3x3 instead of the spec's 1x5: the review's repro)."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.c1, self.lin, self.c2 = nn.Conv2d(4, 4, (1, 3), padding=(0, 1)), nn.Linear(4, 4), nn.Conv2d(4, 4, (1, 3), padding=(0, 1))
        self.how = how

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.c1(x)
        if self.how == "swap":
            y = y.permute(0, 3, 2, 1)
        elif self.how == "transposes":  # (0, 2, 3, 1) as two swaps would be two calls for one layer: written as one permute
            y = torch.permute(y, (0, 2, 3, 1))
        else:
            y = y.permute(0, 2, 3, 1)
        y = self.lin(y)
        return self.c2(y.permute(0, 3, 1, 2))


def test_verify_compares_the_axes_a_model_permutes() -> None:
    assert _wrong(PERM_SPEC, _Permutes("swap")) == {("p1", "axes"): ("(0, 2, 3, 1)", "(0, 3, 2, 1)")}  # was OK: not compared
    assert _wrong(PERM_SPEC, _Permutes("same")) == {}
    result = verify_spec(PERM_SPEC, _Permutes("transposes"))
    assert result.ok and "permuted axes" in result.summary(), result.summary()
    assert [lc.name for lc in result.not_compared] == []  # p1 and p2 compared (each with an ok row), not "not compared"
    # a transpose is the same reordering written otherwise: transpose(1, 3) of N x C x H x W is permute(0, 3, 2, 1)
    spec = {**PERM_SPEC, "layers": [*PERM_SPEC["layers"][:1], {"name": "p1", "type": "transpose", "dim0": 1, "dim1": 3},
                                     *PERM_SPEC["layers"][2:]]}
    assert _wrong(spec, _Permutes("swap")) == {}
    assert _wrong(spec, _Permutes("same")) == {("p1", "axes"): ("(0, 3, 2, 1)", "(0, 2, 3, 1)")}


BRANCH_SPEC = {"name": "branches", "input": [4, 8, 8], "layers": [
    {"name": "c1", "type": "conv2d", "out_channels": 4, "kernel_size": [1, 3], "padding": [0, 1]},
    {"name": "pa", "type": "permute", "dims": [0, 2, 3, 1], "inputs": ["c1"]},
    {"name": "pb", "type": "permute", "dims": [0, 3, 2, 1], "inputs": ["c1"]},
    {"name": "sum", "type": "add", "inputs": ["pa", "pb"]}]}


class _Branches(nn.Module):
    """BRANCH_SPEC's two branches, computed in the other order: call order says nothing of which call is which branch's
    (were the axes also swapped between branches, pairing in order would read OK for a model unlike the spec)."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(4, 4, (1, 3), padding=(0, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.c1(x)
        second = y.permute(0, 3, 2, 1)  # pb's, computed first
        first = y.permute(0, 2, 3, 1)  # pa's
        return first + second


def test_permutes_on_separate_branches_are_not_paired_by_call_order() -> None:
    # code review s9: two permutes with different axes on parallel branches cannot be told apart by order: not compared
    result = verify_spec(BRANCH_SPEC, _Branches())
    named = {lc.name: lc for lc in result.layers}
    for name in ("pa", "pb"):
        assert not named[name].rows and "separate branches" in (named[name].note or ""), named[name]
