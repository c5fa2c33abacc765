"""The README's console examples are what archcalc prints (a block line '...' stands for lines left out)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

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
    spec = re.search(r"it is not one of archcalc.s zoo\),\n\n```json\n(.*?)```", text, re.S)
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


def test_readme_verify_module_example_prints_what_it_compared(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # the README's `verify specs/tinynet.json --module mypkg.models:make_net`, with the spec and the
    # make_net of its pytest example: the OK line it shows is the one printed, and names the settings
    # and wiring verify compared (review s7: it named only shapes, params and MACs)
    pytest.importorskip("torch")
    text = (ROOT / "README.md").read_text()
    spec = re.search(r"it is not one of archcalc.s zoo\),\n\n```json\n(.*?)```", text, re.S)
    test = re.search(r"# test_tinynet.py\n(.*?)```", text, re.S)
    shown = [lines for command, lines in examples() if command.startswith("archcalc verify specs/tinynet.json --module")]
    assert spec and test and len(shown) == 1
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "tinynet.json").write_text(spec.group(1))
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    (tmp_path / "mypkg" / "models.py").write_text(test.group(1))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    r = cli("verify", "specs/tinynet.json", "--module", "mypkg.models:make_net")
    assert r.code == 0
    last = [line for line in shown[0] if line.strip()][-1]
    assert r.out.rstrip().splitlines()[-1] == last
    # settings on 5 layers: conv1 and conv2 (window, padding mode), pool1 (window), relu1 and relu2 (inplace); gap, flatten and fc have none
    assert last.startswith("OK: 8 layers match") and "settings match on 5" in last and "inputs match on 8" in last


def _zoo_row(path: Path) -> str:
    """The README zoo table's row of a numeric spec, from the analysis itself."""
    from archcalc import analyze
    from archcalc.dims import expand, is_symbolic
    from archcalc.render import units

    lecture, torch_ = analyze(path), analyze(path, convention="torch")
    t = lecture.totals
    if is_symbolic(t["params"]):  # written in the README's notation: a·b for a*b, h² for h^2; rows counted with their repeats
        torch_macs = "the same" if torch_.totals["macs"] == t["macs"] else units.count(torch_.totals["macs"])
        cells = [f"`{path.stem}`", " ".join(map(str, lecture.input_shape)), str(expand(sum(r.repeat for r in lecture.rows))),
                 units.count(t["params"]), units.count(t["macs"]), torch_macs, units.size(t["activation_bytes"])]
        return "| " + " | ".join(c.replace("^2", "²").replace("*", "·") for c in cells) + " |"
    return (
        f"| `{path.stem}` | {'×'.join(map(str, lecture.input_shape))} | {len(lecture.rows)} | {t['params']:,} | "
        f"{units.count(t['macs'])} | {torch_.totals['macs']:,} | {units.size(t['activation_bytes'])} |"
    )


def test_readme_zoo_table_matches_the_analysis() -> None:
    """Every numeric row of the README's zoo table is what archcalc prints (its activation memory
    column was stale for the language models: 856 MiB for gpt2 where the table says 892 MiB)."""
    text = (ROOT / "README.md").read_text()
    rows = {line.split("`")[1]: line for line in text.splitlines() if line.startswith("| `") and line.count("|") == 8}
    zoo = sorted((ROOT / "specs").glob("*.json"))
    checked = 0
    for path in zoo:
        assert path.stem in rows, f"{path.stem} is missing from the README's zoo table"
        assert rows[path.stem] == _zoo_row(path)
        checked += 1
    assert checked == len(zoo)
