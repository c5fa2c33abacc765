"""The package's layering: the command line sits on top, nothing below imports it.

archcalc.cli parses arguments and dispatches; what commands share (writing output, reading --set)
lives in archcalc.output and archcalc.options, which library code (archcalc.torch.*) imports. A module
that imported archcalc.cli would close an import circle through the torch commands the CLI registers.
Read statically (ast), so a lazy import inside a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import archcalc

PACKAGE = Path(archcalc.__file__).parent
ENTRY_POINTS = {"archcalc/entry.py"}  # the command's entry point (`archcalc`, `python -m archcalc`): the one allowed importer


def imported_modules(path: Path) -> set[str]:
    """Absolute names of the modules ``path`` imports, relative imports resolved against its package."""
    rel = path.relative_to(PACKAGE.parent)
    package = list(rel.with_suffix("").parts)[:-1]  # archcalc/torch/bench.py and archcalc/torch/__init__.py: archcalc.torch
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            names.add(module)
            names |= {f"{module}.{a.name}" for a in node.names}  # from archcalc import cli
    return names


def test_the_walker_resolves_relative_imports() -> None:
    # what the rule below relies on: `from ..cli import x` in archcalc/torch/bench.py is archcalc.cli,
    # and so is `from . import cli` in archcalc/__init__.py
    main = imported_modules(PACKAGE / "entry.py")
    assert "archcalc.cli" in main
    bench = imported_modules(PACKAGE / "torch" / "bench.py")
    assert "archcalc.output" in bench and "archcalc.options" in bench and "archcalc.errors" in bench


def test_nothing_in_the_package_imports_the_cli() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).as_posix()
        if rel in ENTRY_POINTS or rel == "archcalc/cli.py":
            continue
        if any(m == "archcalc.cli" or m.startswith("archcalc.cli.") for m in imported_modules(path)):
            offenders.append(rel)
    assert offenders == [], f"these modules import archcalc.cli (use archcalc.output / archcalc.options): {offenders}"


def test_the_shared_helpers_import_nothing_of_the_commands() -> None:
    # output and options sit below every command: they may use errors, dims and spec, not torch or a command
    for name in ("output.py", "options.py"):
        mods = imported_modules(PACKAGE / name)
        assert not {m for m in mods if m.startswith(("archcalc.torch", "archcalc.cli", "torch"))}, (name, mods)


def test_the_report_imports_nothing_of_check() -> None:
    # report is core and check one of its readers; both decide formulas alike through archcalc.decide,
    # which imports neither (code review s9: report imported check for the add/concat assumptions)
    assert not {m for m in imported_modules(PACKAGE / "report.py") if m.startswith("archcalc.check")}
    assert not {m for m in imported_modules(PACKAGE / "decide.py") if m.startswith(("archcalc.check", "archcalc.report"))}
    assert "archcalc.decide.same_formula_everywhere" in imported_modules(PACKAGE / "report.py")
