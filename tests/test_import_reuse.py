"""A tensor the model holds is counted once, by the first layer that holds it: a weight reused
through a functional call (a tied LM head written ``F.linear(h, self.wte.weight)``) is a
``tie_weight``, and a reuse the spec cannot say is refused, never counted twice (review, session 6:
``import`` gave 816 params for a model of 416, exit 0)."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from archcalc import analyze  # noqa: E402
from archcalc.errors import SpecError  # noqa: E402
from archcalc.spec import parse_spec  # noqa: E402
from archcalc.torch.fx_import import dumps_spec, spec_from_module  # noqa: E402
from archcalc.torch.verify import verify_spec  # noqa: E402


class TiedHead(nn.Module):
    """GPT-2's tied head written functionally: logits = F.linear(ln(wte(idx)), wte.weight)."""

    def __init__(self) -> None:
        super().__init__()
        self.wte, self.ln = nn.Embedding(50, 8), nn.LayerNorm(8)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return F.linear(self.ln(self.wte(idx)), self.wte.weight)


class ConvTwice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.relu(self.c(x)), self.c.weight, self.c.bias, padding=1)


class LinearTwice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.l = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(torch.relu(self.l(x)), self.l.weight, self.l.bias)


class WeightAsTensor(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.l = nn.Linear(8, 8, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.l(x) @ self.l.weight.transpose(0, 1)


class LearnedMatrix(nn.Module):
    """relu(x @ W + b), then a linear: W and b are parameter layers, the matmul holds nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.W, self.b = nn.Parameter(torch.randn(6, 5)), nn.Parameter(torch.zeros(5))
        self.l = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.l(torch.relu(x @ self.W + self.b))


def imported(model: nn.Module, shape: list[int]) -> object:
    return parse_spec(json.loads(dumps_spec(spec_from_module(model, shape))))


def test_a_tied_head_written_functionally_is_a_tie_weight() -> None:
    model = TiedHead()
    arch = imported(model, [6])
    head = next(layer for layer in arch.layers if layer.kind == "linear")  # type: ignore[attr-defined]
    assert head.tie_weight == "wte"
    assert analyze(arch).totals["params"] == 50 * 8 + 2 * 8 == sum(p.numel() for p in model.parameters()) == 416
    result = verify_spec(arch, model)  # type: ignore[arg-type]
    assert result.ok, result.failure_message()


@pytest.mark.parametrize(("model", "shape"), [(ConvTwice(), [4, 6, 6]), (LinearTwice(), [8]), (WeightAsTensor(), [8])],
                         ids=["conv2d", "linear", "weight-as-tensor"])
def test_a_reuse_the_spec_cannot_say_is_refused(model: nn.Module, shape: list[int]) -> None:
    with pytest.raises(SpecError) as e:
        spec_from_module(model, shape)
    assert "counted twice" in e.value.message


def test_a_learned_matrix_imports_and_verifies_against_its_model() -> None:
    """The 30 weights of W sit on W's parameter row; torch's matmul call holds none (it held them,
    so verify reported the model against its own import as a mismatch)."""
    model = LearnedMatrix()
    arch = imported(model, [4, 6])
    rows = {r.type: r for r in analyze(arch).rows}
    assert rows["matmul"].params == 0 and analyze(arch).totals["params"] == 6 * 5 + 5 + 5 * 3 + 3 == 53
    result = verify_spec(arch, model)  # type: ignore[arg-type]
    assert result.ok, result.failure_message()


class ChannelsLast(nn.Module):
    """conv, then the channels-last map times a learned matrix: (N, 6, 6, 4) @ (4, 5) broadcasts W."""

    def __init__(self) -> None:
        super().__init__()
        self.c, self.W, self.c2 = nn.Conv2d(3, 4, 3), nn.Parameter(torch.randn(4, 5)), nn.Conv2d(5, 1, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.c(x).permute(0, 2, 3, 1) @ self.W
        return self.c2(y.permute(0, 3, 1, 2))


def test_a_learned_matrix_is_lined_up_with_the_map_it_multiplies() -> None:
    """It was refused ("cannot broadcast: 6 and  have 1 and 0 axes"): W is read as a parameter of
    shape 1 x 4 x 5, held once; matmul of the 6 x 6 x 4 map with it: 6*6*4*5 = 720 MACs."""
    model = ChannelsLast()
    arch = imported(model, [3, 8, 8])
    rows = {r.type: r for r in analyze(arch).rows}
    assert rows["parameter"].output_shape == (1, 4, 5) and rows["matmul"].output_shape == (6, 6, 5)
    assert rows["matmul"].macs == 6 * 6 * 4 * 5
    result = verify_spec(arch, model)  # type: ignore[arg-type]
    assert result.ok, result.failure_message()


def test_a_hand_written_matmul_of_mismatched_ranks_says_how_to_line_them_up() -> None:
    spec = {"name": "mm", "input": [4, 6, 6], "layers": [
        {"name": "t", "type": "permute", "dims": [0, 2, 3, 1]},
        {"name": "W", "type": "parameter", "shape": [4, 5]},
        {"name": "mm", "type": "matmul", "inputs": ["t", "W"]}]}
    with pytest.raises(SpecError) as e:
        analyze(spec)
    assert "6 and none, 1 and 0 axes per sample" in e.value.message and "[1, ..., K, N]" in e.value.message
