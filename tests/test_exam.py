"""The exam, marked: fifty-odd claims written as students write them (tests/data/exam.json), each
with the verdict a lecturer gives and why, judged by ``archcalc check`` one by one."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import ROOT, cli

EXAM = json.loads((ROOT / "tests" / "data" / "exam.json").read_text())
CLAIMS: list[dict[str, Any]] = EXAM["claims"]
CODES = {"correct": 0, "wrong": 1, "unreadable": 2}


def test_the_exam_has_fifty_claims_of_every_kind() -> None:
    assert len(CLAIMS) >= 50
    assert {c["verdict"] for c in CLAIMS} == set(CODES)
    assert all(c["why"] for c in CLAIMS)


@pytest.mark.parametrize("entry", CLAIMS, ids=[f"{c['claim']}@{c.get('spec', c.get('stack'))}" for c in CLAIMS])
def test_exam_claim(entry: dict[str, Any]) -> None:
    where = ["--stack", *EXAM["stacks"][entry["stack"]]] if "stack" in entry else [str(ROOT / entry["spec"])]
    r = cli("check", *where, entry["claim"])
    assert r.code == CODES[entry["verdict"]], f"{entry['why']}\n{r.out}{r.err}"
    mark = {"correct": "correct ", "wrong": "WRONG ", "unreadable": "cannot read "}[entry["verdict"]]
    assert r.out.startswith(mark), r.out
    if "says" in entry:
        assert entry["says"] in r.out, r.out


def test_one_unreadable_claim_leaves_the_others_judged() -> None:
    r = cli("check", str(ROOT / "specs" / "alexnet.json"), "conv1.params=lots", "pool2.output=14x14", "conv1.macs=73M")
    assert r.code == 2 and len(r.err.splitlines()) == 1 and "cannot read 'conv1.params=lots'" in r.err
    lines = r.out.splitlines()
    assert lines[0].startswith("cannot read conv1.params=lots")
    assert any(x.startswith("WRONG   pool2.output=14x14") for x in lines) and any(x.startswith("correct conv1.macs=73M") for x in lines)
    assert lines[-1] == "1 correct, 1 wrong, 1 not read"


@pytest.mark.parametrize("value", ["1e999999999", "1e-999999999", "((9**8)**8)**8", "9**8**8", "(((C**8)**8)**8)"])
def test_huge_claims_are_refused_before_any_arithmetic(value: str) -> None:
    # 10**(10**9) would take minutes and gigabytes to build; (9**8)**8)**8 = 9**512 nests powers past 64
    r = cli("check", str(ROOT / "specs" / "alexnet.json"), f"total.params={value}")
    assert r.code == 2 and "cannot read" in r.out, r.out + r.err


def test_symbolic_claims_need_no_simplify() -> None:
    # twelve stride-2 convolutions on a symbolic input: nested floors that sympy.simplify took over a
    # minute on; an exact evaluation at far sizes also catches a claim true only near 256 (12 halvings of 256..319 give 1)
    layers = ["conv 8 3 s2 p1"] * 12
    r = cli("check", "--stack", "8xHxW", *layers, "conv12.output=8x1x1", "conv1.output=8x(H+1)//2x(W+1)//2")
    assert r.code == 1 and r.out.startswith("WRONG   conv12.output=8x1x1"), r.out
    assert "correct conv1.output=8x(H+1)//2x(W+1)//2" in r.out


def test_a_shape_of_bracketed_formulas_is_not_a_tuple() -> None:
    # (H+1)//2 per axis, written with brackets on both sides of the x: not the tuple "(192, 13, 13)"
    r = cli("check", "--stack", "3xHxW", "conv 8 3 s2 p1", "conv1.output=((H+1)//2)x((W+1)//2)")
    assert r.code == 0 and r.out.startswith("correct"), r.out + r.err
