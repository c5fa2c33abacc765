"""A hostile student's review of ``explain`` and ``verify``: token tensors named as tokens and
features (not channels and H, W), attention's general formulas, every name the CLI shows
explainable, and ``verify --output-key`` for models that return a dict."""

from __future__ import annotations

from conftest import SPECS, cli

RESNET50 = str(SPECS / "resnet50.json")


def _step(out: str, quantity: str) -> tuple[str, str]:
    """(formula, worked line) of one quantity of a text explanation."""
    lines = out.splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith(quantity + "  "))
    return lines[i][len(quantity) :].strip(), lines[i + 1].strip()


# ----- 3. names the CLI shows are explainable --------------------------------------------------------


def test_a_name_that_prefixes_layers_is_explained_as_their_sum() -> None:
    # `memory --checkpoint` lists layer1.0.downsample among its blocks: the 1x1 projection conv
    # (64 -> 256, no bias) and its batchnorm, written downsample.0 and downsample.1 in the block
    r = cli("explain", RESNET50, "layer1.0.downsample")
    assert r.code == 0, r.err
    assert r.out.startswith("layer1.0.downsample (block, 2 layers)")
    conv_params, bn_params = 64 * 256, 2 * 256
    assert _step(r.out, "params") == ("layer1.0.downsample.0 16.4K + layer1.0.downsample.1 512", f"= {conv_params + bn_params:,} (16.9K)")
    macs = 256 * 56 * 56 * 64  # output elements x C_in (a 1x1 window)
    assert _step(r.out, "MACs (lecture)")[1] == f"= {macs:,} (51.4M)"
    # check judges the same sum
    assert cli("check", RESNET50, f"layer1.0.downsample.params={conv_params + bn_params}").code == 0
