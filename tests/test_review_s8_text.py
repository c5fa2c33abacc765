"""Wording fixes from review s8, finding 20: each message says what is true of the network it names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import SPECS, cli


def test_vit_total_field_is_not_called_a_learned_window() -> None:
    # ViT-B/16 (Dosovitskiy et al. 2021): every token sees the whole 224x224 image from the first attention
    # on; encoder.ln, the last layer with a field, is a LayerNorm on tokens, no window
    r = cli("check", str(SPECS / "vit_b_16.json"), "total.rf=whole")
    assert r.code == 0 and "learned window" not in r.out, r.out
    assert "the last layer with a receptive field, encoder.ln, whose input already sees the whole input" in r.out
    # LeNet-5's C5 (LeCun et al. 1998): a 5x5 conv over the 5x5 maps of S4, a window that reads them to one position;
    # its field: 16 (S4's) + (5 - 1) * 4 (S4's stride) = 32, the whole 32x32 input
    r = cli("check", str(SPECS / "lenet5.json"), f"total.rf={16 + (5 - 1) * 4}")
    assert r.code == 0 and "the learned window that reads the last map down to one position, c5" in r.out, r.out


def test_a_decimal_stride_is_read_exactly() -> None:
    # x2 upsampling then a stride-3 conv: outputs 3 upsampled pixels apart, 3/2 input pixels on average
    stack = ("--stack", "1x8x8", "upsample scale_factor=2", "conv 1 3 s3 p1")
    r = cli("check", *stack, "conv1.stride=1.5", "conv1.stride=1.5x1.5", "conv1.stride=3/2")
    assert r.code == 0 and r.out.rstrip().endswith("3 correct, 0 wrong"), r.out
    r = cli("check", *stack, "conv1.stride=1.25")  # 5/4, not 3/2
    assert r.code == 1 and r.out.startswith("WRONG"), r.out


def test_a_wrong_axis_is_named_by_its_index_not_its_size() -> None:
    # AlexNet's conv1 (torchvision): stride 4 on both axes; "axis 4" named the size, not the axis (index 1 of H, W)
    r = cli("check", str(SPECS / "alexnet.json"), "conv1.stride=0/4")
    assert r.code == 1 and "axis 1 (exact 4): compared as numbers" in r.out and "axis 4" not in r.out, r.out


def test_compare_writes_whole_for_the_stride_where_the_field_is_whole() -> None:
    # EfficientNet-B0's last map is read by squeeze-and-excitation (a global pool): the table writes
    # 'whole' for its field and its stride; compare wrote 'whole' next to '32×32'
    r = cli("compare", str(SPECS / "efficientnet_b0.json"), str(SPECS / "resnet50.json"))
    assert r.code == 0, r.err
    line = next(x for x in r.out.splitlines() if x.startswith("effective stride"))
    assert line.split()[2] == "whole" and "32\u00d732" in line, line  # ResNet-50: 32x32 (five stride-2 stages, 2^5)


def test_a_device_refusal_at_batch_1_does_not_ask_for_a_smaller_batch() -> None:
    torch = pytest.importorskip("torch")
    from archcalc import analyze
    from archcalc.errors import SpecError
    from archcalc.torch.limits import check_fits

    rep = analyze(SPECS / "alexnet.json")  # 61,100,840 float32 weights alone: far past 1 MiB
    with pytest.raises(SpecError) as e:
        check_fits(rep, torch.device("cpu"), free=1 << 20)
    assert "try a smaller --batch" not in str(e.value) and "at batch 1 already" in str(e.value)
    rep4 = analyze(SPECS / "alexnet.json", batch=4)
    with pytest.raises(SpecError, match="try a smaller --batch"):
        check_fits(rep4, torch.device("cpu"), free=1 << 20)


def test_quick_json_layers_are_numbered_from_1_as_word_layers_are() -> None:
    r = cli("quick", "8x4", '{"type":"causal_mask"}', "relu", '{"type":"relu"}', '{"type":"causal_mask","name":"m"}', "--format", "json")
    assert r.code == 0, r.err
    names = [row["name"] for row in json.loads(r.out)["layers"]]
    assert names == ["causal_mask1", "relu1", "relu2", "m"]


def test_markdown_escapes_an_underscore_that_would_open_emphasis(tmp_path: Path) -> None:
    from archcalc.render import md_escape

    assert md_escape("_z_") == "\\_z\\_" and md_escape("conv1_1") == "conv1_1" and md_escape("ln_1 (\u00d7l)") == "ln_1 (\u00d7l)"
    spec = {"name": "u", "input": [1, 4, 4], "layers": [{"name": "_z_", "type": "relu"}, {"name": "a_b", "type": "relu"}]}
    path = tmp_path / "u.json"
    path.write_text(json.dumps(spec))
    r = cli("table", str(path), "--format", "markdown")
    assert r.code == 0 and "| \\_z\\_ " in r.out and "| a_b " in r.out, r.out


def test_explain_names_the_totals_it_derives() -> None:
    r = cli("explain", str(SPECS / "alexnet.json"), "total.memory")
    assert r.code == 2 and "explain derives the totals total.params, total.macs and total.flops" in r.err, r.err
    assert "no layer or block named" not in r.err
