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


def test_readme_pytest_plugin_example_runs_as_written(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # the README's spec and test file, copied out verbatim: the test passes, and fails as shown when conv2 drifts to 5x5
    pytest.importorskip("torch")
    import subprocess
    import sys

    text = (ROOT / "README.md").read_text()
    spec = re.search(r"the spec, `specs/tinynet.json`,\n\n```json\n(.*?)```", text, re.S)
    test = re.search(r"# test_tinynet.py\n(.*?)```", text, re.S)
    assert spec and test
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "tinynet.json").write_text(spec.group(1))
    (tmp_path / "test_tinynet.py").write_text(test.group(1))
    run = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_tinynet.py"]
    ok = subprocess.run(run, cwd=tmp_path, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout[-2000:]
    (tmp_path / "test_tinynet.py").write_text(test.group(1).replace("nn.Conv2d(16, 32, 3, padding=1)", "nn.Conv2d(16, 32, 5, padding=2)"))
    drift = subprocess.run(run, cwd=tmp_path, capture_output=True, text=True)
    assert drift.returncode == 1
    # 32*16*5*5 + 32 = 12,832 params against the spec's 32*16*3*3 + 32 = 4,640
    assert "first mismatch: layer 'conv2' (module '3'): params is 4,640 in the spec, 12,832 in torch" in drift.stdout
