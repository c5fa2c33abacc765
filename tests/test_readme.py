"""The README's console examples are what archcalc prints (a block line '...' stands for lines left out)."""

from __future__ import annotations

import re
import shlex

import pytest
from conftest import ROOT, cli

# commands that need files the README only describes (bad.json, specs/tinynet.json with a user package)
NOT_RUN = ("archcalc table bad.json", "archcalc verify specs/tinynet.json")


def examples() -> list[tuple[str, list[str]]]:
    text = (ROOT / "README.md").read_text()
    out: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```console\n(.*?)```", text, flags=re.S):
        lines = block.splitlines()
        i = 0
        while i < len(lines):
            if not lines[i].startswith("$ archcalc"):
                i += 1
                continue
            command = lines[i][2:]
            while command.endswith("\\"):  # continued on the next line
                i += 1
                command = command[:-1] + lines[i].strip()
            i += 1
            shown = []
            while i < len(lines) and not lines[i].startswith("$ "):
                shown.append(lines[i])
                i += 1
            out.append((command, shown))
    return out


EXAMPLES = [e for e in examples() if not e[0].startswith(NOT_RUN)]


def test_the_readme_has_examples_to_check() -> None:
    assert len(EXAMPLES) >= 6


@pytest.mark.parametrize(("command", "shown"), EXAMPLES, ids=[c[:60] for c, _ in EXAMPLES])
def test_readme_example(command: str, shown: list[str]) -> None:
    args = shlex.split(command)[1:]
    r = cli(*args)
    printed = [line.rstrip() for line in (r.out + r.err).splitlines()]
    want = [line.rstrip() for line in shown]
    while want and not want[-1]:
        want.pop()
    while printed and not printed[-1]:
        printed.pop()
    if "..." not in want:
        assert printed == want, "\n".join(printed)
        return
    it = iter(printed)  # with elisions: the lines shown appear in this order
    for line in (w for w in want if w != "..."):
        assert any(p == line for p in it), f"not printed (in this order): {line!r}\n" + "\n".join(printed)
