"""The HTML report in a real browser: headless Chromium (Debian's package) driven by Playwright.

Playwright is used with the system Chromium as its executable (no browser download). .ci/run
installs both and sets ARCHCALC_REQUIRE_BROWSER=1, which turns a missing browser into a failure;
elsewhere these tests skip with the reason. Each test saves a screenshot under the test's tmp folder
(and under $ARCHCALC_SCREENSHOTS when set).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import SPECS, cli

CHROMIUM = next((p for p in (os.environ.get("ARCHCALC_CHROMIUM"), shutil.which("chromium"), shutil.which("chromium-browser")) if p), None)


def _unavailable() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright not installed (pip install playwright; the browser is Debian's chromium)"
    if CHROMIUM is None:
        return "chromium not installed (apt-get install chromium)"
    if shutil.which("dot") is None:
        return "Graphviz not installed (apt-get install graphviz): the page's diagram needs it"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    why = _unavailable()
    if why:
        if os.environ.get("ARCHCALC_REQUIRE_BROWSER"):  # set by .ci/run, which installs them: no silent skip there
            pytest.fail(f"a browser is required here: {why}")
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield b
        finally:
            b.close()


class Loaded:
    def __init__(self, page: Any, report: dict[str, Any], console: list[str], requests: list[str], url: str) -> None:
        self.page, self.report, self.console, self.requests, self.url = page, report, console, requests, url


def load(browser: Any, tmp_path: Path, name: str) -> Iterator[Loaded]:
    html_file = tmp_path / f"{name}.html"
    r = cli("table", str(SPECS / f"{name}.json"), "-o", str(html_file))
    assert r.code == 0, r.err
    report = json.loads(cli("table", str(SPECS / f"{name}.json"), "--format", "json").out)  # the JSON report, made apart
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    console: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    page.on("request", lambda req: requests.append(req.url))
    url = html_file.as_uri()
    page.goto(url)
    page.wait_for_load_state("load")
    try:
        yield Loaded(page, report, console, requests, url)
    finally:
        page.close()


@pytest.fixture(params=["alexnet", "googlenet", "resnet152"])
def loaded(request: pytest.FixtureRequest, browser: Any, tmp_path: Path) -> Iterator[Loaded]:
    yield from load(browser, tmp_path, request.param)


def screenshot(page: Any, tmp_path: Path, name: str) -> Path:
    out = tmp_path / f"{name}.png"
    page.screenshot(path=str(out))
    keep = os.environ.get("ARCHCALC_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(out, Path(keep) / out.name)
    assert out.read_bytes().startswith(b"\x89PNG") and out.stat().st_size > 10_000
    return out


def test_page_loads_offline_without_errors(loaded: Loaded, tmp_path: Path) -> None:
    assert loaded.console == []
    assert loaded.requests == [loaded.url]  # the page itself, nothing else: no CDN, no font, no favicon
    assert loaded.page.locator("#diagram svg g.node").count() >= 2
    screenshot(loaded.page, tmp_path, loaded.report["name"])


def test_dom_numbers_equal_the_json_report(loaded: Loaded) -> None:
    rows = loaded.page.eval_on_selector_all(
        "#layers tbody tr",
        "trs => trs.map(tr => [tr.dataset.name, tr.cells[1].textContent, ...[3, 4, 5].map(i => tr.cells[i].dataset.value)])",
    )
    want = [[la["name"], la["type"], str(la["params"]), str(la["macs"]), str(la["activation_bytes"])] for la in loaded.report["layers"]]
    assert rows == want
    totals = {q: loaded.page.get_attribute(f"#total-{q}", "data-value") for q in ("params", "macs", "flops", "activation_bytes")}
    assert totals == {q: str(v) for q, v in loaded.report["totals"].items()}
    shown = loaded.page.inner_text("#total-params")
    assert shown.replace(",", "") == str(loaded.report["totals"]["params"])  # the number a person reads, in full


def test_sorting_by_macs(loaded: Loaded) -> None:
    page = loaded.page
    page.click("#layers thead th:nth-child(5)")  # MACs: largest first
    macs = [int(v) for v in page.eval_on_selector_all("#layers tbody tr", "trs => trs.map(tr => tr.cells[4].dataset.value)")]
    assert macs == sorted(macs, reverse=True) and macs[0] == max(int(la["macs"]) for la in loaded.report["layers"])
    assert page.get_attribute("#layers thead th:nth-child(5)", "aria-sort") == "descending"
    page.click("#layers thead th:nth-child(5)")
    macs = [int(v) for v in page.eval_on_selector_all("#layers tbody tr", "trs => trs.map(tr => tr.cells[4].dataset.value)")]
    assert macs == sorted(macs)
    page.click("#layers thead th:nth-child(1)")  # by name, then back: every row still there once
    names = page.eval_on_selector_all("#layers tbody tr", "trs => trs.map(tr => tr.dataset.name)")
    assert sorted(names) == sorted(la["name"] for la in loaded.report["layers"])


def test_node_click_selects_its_rows_and_row_click_finds_its_node(loaded: Loaded, tmp_path: Path) -> None:
    page = loaded.page
    units = json.loads(page.inner_text("#report-data"))["units"]
    # the node holding the layer with the most MACs (conv2 in AlexNet, a 3x3 branch in GoogLeNet, layer3 x36 in ResNet-152)
    top = max(loaded.report["layers"], key=lambda la: int(la["macs"]))["name"]
    node = next(i for i, names in units.items() if top in names)
    page.click(f"#diagram g.node#{node}")
    selected = page.eval_on_selector_all("#layers tbody tr.sel", "trs => trs.map(tr => tr.dataset.name)")
    assert selected == units[node] and top in selected
    assert page.locator(f"#diagram g.node#{node}.hl").count() == 1
    screenshot(page, tmp_path, f"{loaded.report['name']}_node_selected")
    last = loaded.report["layers"][-1]["name"]
    page.click(f"#layers tbody tr[data-name='{last}']")
    owner = next(i for i, names in units.items() if last in names)
    assert page.eval_on_selector_all("#diagram g.node.hl", "gs => gs.map(g => g.id)") == [owner]
    assert page.eval_on_selector_all("#layers tbody tr.sel", "trs => trs.map(tr => tr.dataset.name)") == [last]


def test_hostile_names_stay_text(browser: Any, tmp_path: Path) -> None:
    evil = '</script><img src=x onerror="window.pwned=1"><b>"&amp;'
    spec = {"name": "<i>net</i>", "input": [3, 8, 8], "layers": [{"name": evil, "type": "conv2d", "out_channels": 4, "kernel_size": 3}]}
    (tmp_path / "evil.json").write_text(json.dumps(spec))
    r = cli("table", str(tmp_path / "evil.json"), "-o", str(tmp_path / "evil.html"))
    assert r.code == 0, r.err
    page = browser.new_page()
    errors: list[str] = []
    requests: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda req: requests.append(req.url))
    page.goto((tmp_path / "evil.html").as_uri())
    assert errors == [] and page.evaluate("window.pwned") is None
    assert requests == [(tmp_path / "evil.html").as_uri()]  # the <img src=x> never became an element
    assert page.get_attribute("#layers tbody tr", "data-name") == evil
    assert page.inner_text("h1") == "<i>net</i>"
    page.close()
