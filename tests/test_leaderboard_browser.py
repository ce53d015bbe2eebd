"""The leaderboard in a real headless browser: Playwright driving the system's Chromium (Debian's `chromium`,
installed by `.ci/run`; `make test` asks for it). Screenshots go to runs/leaderboard/."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from memora_bench.leaderboard.build import build_site, slug
from memora_bench.paths import DEFAULT_SUITE, repo_root
from tests.test_leaderboard import EVIL, results  # noqa: F401  (fixture)

SHOTS = repo_root() / "runs" / "leaderboard"


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise AssertionError("no Chromium found: install Debian's `chromium` (apt-get install chromium); "
                         ".ci/run does this")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        yield b
        b.close()


def open_page(browser, path: Path, width: int = 1280):
    page = browser.new_page(viewport={"width": width, "height": 900})
    events = {"console": [], "requests": [], "dialogs": [], "errors": []}
    page.on("console", lambda m: events["console"].append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: events["errors"].append(str(e)))
    page.on("request", lambda r: events["requests"].append(r.url))

    def on_dialog(d):
        events["dialogs"].append(d.message)
        d.dismiss()

    page.on("dialog", on_dialog)
    page.goto(path.resolve().as_uri())
    page.wait_for_load_state("load")
    return page, events


@pytest.fixture()
def site(results, tmp_path):  # noqa: F811
    out = tmp_path / "site"
    build_site([results], out)
    return out


def test_index_opens_from_file_with_no_error_and_no_network(browser, site):
    page, events = open_page(browser, site / "index.html")
    assert page.title() == "memora-bench leaderboard"
    assert not events["console"] and not events["errors"], events
    assert events["requests"] and all(u.startswith("file://") for u in events["requests"]), events["requests"]
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "index-1280.png"), full_page=True)
    page.close()


def test_numbers_in_the_dom_equal_the_result_files(browser, site, results):  # noqa: F811
    page, _ = open_page(browser, site / "index.html")
    for name in ("method-a", "original"):
        res = json.loads((results / name / "mini-seven.json").read_text())
        plain = res["probes"]["plain"]["rates"]["all"]
        row = page.locator(f'table[data-task="mini-seven"] tr[data-submission="{name}"]')
        cell = row.locator('td[data-col="plain"]')
        assert float(cell.get_attribute("data-sort")) == plain["rate"]
        assert cell.inner_text().startswith(f"{100 * plain['rate']:.1f} %")
        assert f"{plain['k']}/{plain['n']}" in cell.inner_text()
        retain = res["utility"]["retain"]["all"]
        assert float(row.locator('td[data-col="retain"]').get_attribute("data-sort")) == retain["rate"]
    adv = json.loads((results / "method-b" / "mini-seven.json").read_text())["probes"]["unlearndiffatk"]["rates"]["all"]
    cell = page.locator('table[data-task="mini-seven"] tr[data-submission="method-b"] td[data-col="adv:unlearndiffatk"]')
    assert float(cell.get_attribute("data-sort")) == adv["rate"] and f"{adv['k']}/{adv['n']}" in cell.inner_text()
    assert page.locator('table[data-task="mini-seven"] th[data-col="adv:unlearndiffatk"]').count() == 1
    assert page.locator('table[data-task="mini-seven"] th[data-col="adv:unlearndiffatk"]').inner_text().startswith(
        "UnlearnDiffAtk")
    assert page.locator('table[data-task="mini-bold"] th[data-col="adv:unlearndiffatk"]').count() == 0
    page.close()


def test_clicking_a_header_sorts_the_rows(browser, site):
    page, _ = open_page(browser, site / "index.html")
    table = page.locator('table[data-task="mini-seven"]')

    def order():
        return [r.get_attribute("data-submission") for r in table.locator("tbody tr").all()]

    def plain_values():
        return [float(v) for v in table.locator('tbody td[data-col="plain"]').evaluate_all(
            "cells => cells.map(c => c.getAttribute('data-sort'))")]

    first = order()
    table.locator('th[data-col="plain"] button').click()
    assert plain_values() == sorted(plain_values())
    assert table.locator('th[data-col="plain"]').get_attribute("aria-sort") == "ascending"
    table.locator('th[data-col="plain"] button').click()
    assert plain_values() == sorted(plain_values(), reverse=True)
    assert order() != first or len(first) < 2
    # Unmeasured MemoRa cells (the control and the evil row have none) stay last in both directions.
    table.locator('th[data-col="memory"] button').click()
    memory = table.locator('tbody td[data-col="memory"]').evaluate_all("c => c.map(x => x.getAttribute('data-sort'))")
    assert memory[:2] == ["0.2", "0.9"] and memory[2:] == ["", ""]
    page.close()


def test_html_in_every_text_field_renders_as_text(browser, site):
    for path in (site / "index.html", site / "submissions" / f"{slug('evil')}.html"):
        page, events = open_page(browser, path)
        assert not events["dialogs"], events["dialogs"]
        assert page.locator("script").count() == 1  # only the site's own script
        assert EVIL in page.inner_text("body")
        page.close()


def test_submission_page_and_phone_width(browser, site):
    page, events = open_page(browser, site / "submissions" / f"{slug('method-a')}.html", width=390)
    assert not events["console"] and not events["errors"], events
    assert page.locator("svg circle").count() == 4  # 2 budgets x (submission, oracle)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"page scrolls sideways by {overflow}px at phone width"
    page.screenshot(path=str(SHOTS / "submission-390.png"), full_page=True)
    page.close()
    page, _ = open_page(browser, site / "index.html", width=390)
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    page.screenshot(path=str(SHOTS / "index-390.png"), full_page=True)
    page.close()


COMMITTED = repo_root() / "leaderboard"
COMMITTED_RESULTS = repo_root() / "results" / DEFAULT_SUITE


def test_committed_leaderboard_is_current_opens_cleanly_and_shows_the_committed_results(browser, tmp_path,
                                                                                      monkeypatch):
    """`leaderboard/` (make leaderboard) is rebuilt from the official suite's results: same tables and downloads, no
    console error, no request off file://, every plain, adversarial, MemoRa and retained cell equal to its
    result file, and the Forgetting and Index cells those of the row's least forgotten concept (highest label,
    then highest index) in the baselines verdict table, computed from the same files."""
    from memora_bench.unlearning import table

    order = {"LTM": 0, "partial": 1, "STM": 2}
    shown = {}
    for x in table.verdict_rows(COMMITTED_RESULTS, repo_root() / "baselines"):
        key = (x["submission"], x["task"])
        rank = (order.get(x["headline"], 3), x["index"], x["concept"])
        if key not in shown or rank > shown[key][0]:
            shown[key] = (rank, x)
    fresh = tmp_path / "site"
    monkeypatch.chdir(repo_root())  # as `make leaderboard` runs it: pages name result files relative to the repo
    build_site([Path("results") / DEFAULT_SUITE], fresh, cache_dir=tmp_path / "no-cache")  # a fresh clone: no cache
    files = {p.relative_to(COMMITTED) for p in COMMITTED.rglob("*") if p.is_file()} - {Path("README.md")}
    assert files == {p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file()}, "run `make leaderboard`"
    for name in sorted(files):
        assert (fresh / name).read_bytes() == (COMMITTED / name).read_bytes(), f"run `make leaderboard` ({name})"
    pages = sorted((COMMITTED / "submissions").glob("*.html"))
    assert pages and not [p.name for p in pages if "not in cache" in p.read_text()], \
        f"a submission page lacks strip images: `memora-bench strips results/{DEFAULT_SUITE}`, then `make leaderboard`"
    page, events = open_page(browser, COMMITTED / "index.html")
    assert not events["console"] and not events["errors"], events
    assert all(u.startswith("file://") for u in events["requests"]), events["requests"]
    # the verdict is visible at 1,280 px without scrolling sideways: the label column lies inside the window
    headers = page.locator('th[data-col="label"]').all()
    assert headers and all(h.bounding_box()["x"] + h.bounding_box()["width"] <= 1280 for h in headers)
    badges = page.locator('td[data-col="label"] .badge').all()
    assert len(badges) == len(list(COMMITTED_RESULTS.glob("*/*.json")))
    assert all(b.bounding_box()["x"] + b.bounding_box()["width"] <= 1280 for b in badges)
    checked = 0
    results = sorted(COMMITTED_RESULTS.glob("*/*.json"))
    for path in results:
        res = json.loads(path.read_text())
        key = (res["submission"]["name"], res["task"]["name"])
        row = page.locator(f'table[data-task="{key[1]}"] tr[data-submission="{key[0]}"]')
        plain, retain = res["probes"]["plain"]["rates"]["all"], res["utility"]["retain"]["all"]
        cell = row.locator('td[data-col="plain"]')
        assert float(cell.get_attribute("data-sort")) == plain["rate"]
        assert f"{plain['k']}/{plain['n']}" in cell.inner_text()
        assert float(row.locator('td[data-col="retain"]').get_attribute("data-sort")) == retain["rate"]
        memora = res["probes"]["memora"]
        budgets = memora["params"]["budgets"]
        # MemoRa's cells show the concept with MemoRa's highest index (one concept unless the task erases two)
        entry = sorted(memora["concepts"].items(), key=lambda kv: (-kv[1]["verdict"]["index"], kv[0]))[0][1]
        for b in memora["params"]["headline_budgets"]:
            point = entry["curve"][budgets.index(b)]
            cell = row.locator(f'td[data-col="memora@{b}"]')
            assert float(cell.get_attribute("data-sort")) == point["rate"]
            assert f"{point['k']}/{point['n']}" in cell.inner_text()
        x = shown[key][1]
        assert row.locator('td[data-col="label"]').inner_text().strip().splitlines()[0] == x["headline"]
        index = row.locator('td[data-col="index"]')
        assert float(index.get_attribute("data-sort")) == pytest.approx(x["index"], abs=1e-12)
        lo, hi = x["index_interval"]
        assert f"{x['index']:.2f}" in index.inner_text() and f"[{lo:.2f}, {hi:.2f}]" in index.inner_text()
        assert lo < hi  # never a point interval (identical hits are widened to Newcombe's)
        for probe in ("unlearndiffatk", "ringabell", "concept_inversion"):
            rate = res["probes"][probe]["rates"]["all"]
            cell = row.locator(f'td[data-col="adv:{probe}"]')
            assert float(cell.get_attribute("data-sort")) == rate["rate"]
            assert f"{rate['k']}/{rate['n']}" in cell.inner_text()
        checked += 1
    suite_tasks = yaml.safe_load((repo_root() / "benchmark" / f"{DEFAULT_SUITE}.yaml").read_text())["tasks"]
    # per task: 7 recipes, the original and the oracle, hidden-original, hidden-oracle and at least five rungs
    assert {p.stem for p in results} == set(suite_tasks) and checked >= 16 * len(suite_tasks)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "committed-index-1280.png"), full_page=True)
    page.close()


def test_overview_charts_scatter_filters_paper_links_and_the_scoring_page(browser, tmp_path):
    """Built from the official suite's results: per task and erased concept one chart with every method's MemoRa curve and the
    oracle's, a robustness-against-utility scatter of the methods with the original and the oracle, row filters
    by text, label and controls, method names linking to the paper of their (hash-matched) manifest, and
    docs/scoring.md rendered as a page."""
    fresh = tmp_path / "site"
    build_site([COMMITTED_RESULTS], fresh, cache_dir=tmp_path / "no-cache")
    page, events = open_page(browser, fresh / "index.html")
    assert not events["console"] and not events["errors"], events
    results = [json.loads(p.read_text()) for p in sorted(COMMITTED_RESULTS.glob("*/*.json"))]
    figures = 0
    for task in sorted({r["task"]["name"] for r in results}):
        here = [r for r in results if r["task"]["name"] == task]
        methods = {r["submission"]["name"] for r in here if not r["submission"]["control"]}
        budgets = here[0]["probes"]["memora"]["params"]["budgets"]
        for concept in sorted(here[0]["probes"]["memora"]["concepts"]):
            fig = page.locator(f'figure.overview[data-task="{task}"][data-concept="{concept}"]')
            if not methods:
                assert fig.count() == 0
                continue
            figures += 1
            names = set(fig.locator("g.series").evaluate_all("gs => gs.map(g => g.getAttribute('data-name'))"))
            assert names == methods | {"retrain oracle (floor)"}, (task, concept, names)
            assert fig.locator("g.series circle").count() == len(budgets) * len(names)
            assert "LoRA relearning steps" in fig.inner_text() and "original model (ceiling)" in fig.inner_text()
        if methods:
            points = set(page.locator(f'figure.scatter[data-task="{task}"] g.point').evaluate_all(
                "gs => gs.map(g => g.getAttribute('data-name'))"))
            assert points == methods | {"original", "oracle"}, (task, points)
    assert figures >= 2
    # filters on mini-seven: text, label, controls
    table = page.locator('table[data-task="mini-seven"]')
    box = page.locator('.filters[data-for="mini-seven"]')

    def visible():
        return [r.get_attribute("data-submission") for r in table.locator("tbody tr").all() if r.is_visible()]

    every = visible()
    assert len(every) == table.locator("tbody tr").count() >= 9
    box.locator('[data-filter="text"]').fill("salun")
    assert visible() == ["salun-mini-seven"] and box.locator('[data-filter="count"]').inner_text() == \
        f"1 of {len(every)} rows"
    box.locator('[data-filter="text"]').fill("")
    box.locator('[data-filter="label"]').select_option("STM")
    stm = visible()
    assert stm and all(table.locator(f'tr[data-submission="{s}"]').get_attribute("data-label") == "STM" for s in stm)
    assert len(stm) < len(every)
    box.locator('[data-filter="label"]').select_option("")
    box.locator('[data-filter="controls"]').uncheck()
    methods = visible()
    assert methods and all(table.locator(f'tr[data-submission="{s}"]').get_attribute("data-control") == "no"
                           for s in methods)
    assert len(methods) == len({r["submission"]["name"] for r in results
                                if r["task"]["name"] == "mini-seven" and not r["submission"]["control"]})
    # the method name links to the paper its manifest names
    manifest = yaml.safe_load((repo_root() / "baselines" / "esd-x-mini-seven" / "submission.yaml").read_text())
    link = table.locator('tr[data-submission="esd-x-mini-seven"] a.paper')
    assert link.get_attribute("href") == manifest["reference"] and link.inner_text() == manifest["method"]
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "overview-1280.png"), full_page=True)
    page.close()
    page, events = open_page(browser, fresh / "scoring.html")
    assert not events["console"] and not events["errors"], events
    assert page.locator("article.doc h2", has_text="The verdict").count() == 1
    assert page.locator("article.doc table").count() >= 3 and page.locator("script").count() == 1
    assert "<!--" not in page.inner_text("body")  # the generated tables' markers are not shown
    page.close()
