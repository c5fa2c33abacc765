"""check gives no right/wrong verdict on a figure the table marks approximate (review s6, finding 7):
such a claim is 'cannot judge', exit 2, as a budget over a free repeat count is (README, check)."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import cli

# body = [conv 3x3 stride 2 padding 1, upsample x2], repeated l times (shape-preserving), then a 3x3 head
SU = {"name": "su", "input": [4, 32, 32],
      "blocks": {"b": {"params": {}, "layers": [
          {"name": "down", "type": "conv2d", "out_channels": 4, "kernel_size": 3, "stride": 2, "padding": 1},
          {"name": "up", "type": "upsample", "scale_factor": 2}]}},
      "layers": [{"name": "body", "type": "block", "block": "b", "repeat": "l"},
                 {"name": "head", "type": "conv2d", "out_channels": 1, "kernel_size": 3, "padding": 1}]}


def test_a_claim_on_an_approximate_receptive_field_cannot_be_judged(tmp_path: Path) -> None:
    spec = tmp_path / "su.json"
    spec.write_text(json.dumps(SU))
    table = json.loads(cli("table", str(spec), "--format", "json").out)
    assert next(r for r in table["layers"] if r["name"] == "head")["receptive_field_approximate"] is True
    # the true field is 2l + 3 (7 at l = 2, 9 at l = 3: torch's gradients agree, test_lineage's upsampling
    # cases); the table's 5x5 is the approximation, so neither 2l+3 nor 5 may get a verdict
    for claim in ("head.rf=2l+3", "head.rf=5", "head.stride=1"):
        r = cli("check", str(spec), claim)
        assert r.code == 2, (claim, r.out)
        assert r.out.startswith(f"cannot judge {claim}: head's "), r.out
        assert "only approximate here, so a claim about it cannot be decided: receptive field approximate from body on" in r.out
    # other quantities of the same layer are judged as before: 4*3*3 + 1 = 37 params
    r = cli("check", str(spec), "head.params=37")
    assert r.code == 0 and r.out.startswith("correct head.params=37")
    # with the repeat count given, the field is exact again: l = 2 gives 2*2 + 3 = 7
    r = cli("check", str(spec), "--set", "l=2", "head.rf=7")
    assert r.code == 0 and r.out.startswith("correct head.rf=7")
