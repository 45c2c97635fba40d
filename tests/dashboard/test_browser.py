"""The dashboard driven in headless chromium (Debian's chromium + chromium-driver, through Selenium).

`envbot dashboard` runs as a real process on 127.0.0.1 over a constructed environments repo; every
page must load without console errors, show the pins the repo holds, link to working pages, and the
metrics page must show the figures of `envbot metrics --json`. Screenshots of every page go to
.devenv/screenshots/ (ignored by git).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from devenv import STATE_DIR
from devenv import dashboard as dashboard_service
from tests.bot.envrepo import REPO_ROOT, git
from tests.bot.histories import History, pin
from tests.bot.test_metrics import build_scenario, offline_pins

SCREENSHOTS = STATE_DIR / "screenshots"
WINDOW = ("2026-01-01", "2026-01-31")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1400,1000")


def chromium_paths() -> tuple[str, str]:
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not browser or not driver:
        pytest.fail("chromium and chromium-driver are not installed: run scripts/bootstrap as root "
                    "(apt-get install chromium chromium-driver)")
    return browser, driver


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[History, dict[str, str]]:
    root = tmp_path_factory.mktemp("dashboard-history")
    h, shas = build_scenario(root, offline_pins())
    (h.work / "charts").mkdir()
    shutil.copytree(REPO_ROOT / "charts" / "ai-app", h.work / "charts" / "ai-app")
    git(h.work, "add", "-A")
    git(h.work, "commit", "-q", "-m", "charts: ai-app in the environments repo")
    git(h.work, "push", "-q", "origin", "HEAD:main")
    # A build that landed in dev 10 minutes ago: staging's 30m soak holds it (a countdown).
    recent = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
    shas["F"] = h.update("dev", pin("f"), recent)
    return h, shas


@pytest.fixture(scope="module")
def dashboard(history, helm_bin: str, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[dashboard_service.Dashboard]:
    h, _ = history
    log = tmp_path_factory.mktemp("dashboard-log") / "dashboard.log"
    env = {"ENVBOT_HELM": helm_bin, "PYTHONPATH": str(REPO_ROOT)}
    for key in ("ARGOCD_SERVER", "ARGOCD_AUTH_TOKEN"):
        os.environ.pop(key, None)
    with dashboard_service.start(str(h.remote), log, ["--offline", "--refresh", "1", "--threads", "4"],
                                 env=env) as service:
        yield service


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def visit(browser, url: str, screenshot: str | None = None) -> None:
    """Load URL; fail on any console error (or failed request) the page caused."""
    browser.get_log("browser")          # drop what earlier pages logged
    browser.get(url)
    errors = [entry for entry in browser.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]
    assert not errors, f"{url}: console errors: {errors}"
    assert "Internal Server Error" not in browser.page_source, url
    if screenshot:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(SCREENSHOTS / f"{screenshot}.png"))


def pins_in_repo(h: History) -> dict[tuple[str, str], tuple[str, str, str]]:
    """(app, env) -> (tag, digest, model sha256), read from the bare remote with git and the values parser."""
    from bot.values import read_pin_text

    result = {}
    for app in h.apps:
        for env in ("dev", "staging", "prod"):
            path = h.values_file(app, env)
            text = git(h.remote, "show", f"main:{path}")
            p = read_pin_text(text, path)
            result[(app, env)] = (p.image.tag, p.image.digest, p.model.sha256)
    return result


def test_every_page_loads_without_console_errors(dashboard, browser) -> None:
    pages = {"matrix": "/", "env-dev": "/env/dev", "env-staging": "/env/staging", "env-prod": "/env/prod",
             "diff": "/diff?app=ai-app&a=staging&b=prod",
             "metrics": f"/metrics?since={WINDOW[0]}&until={WINDOW[1]}"}
    for name, path in pages.items():
        visit(browser, dashboard.url + path, screenshot=name)
    for name in pages:
        assert (SCREENSHOTS / f"{name}.png").stat().st_size > 10_000


def test_matrix_shows_the_pins_the_repo_holds(dashboard, browser, history) -> None:
    from selenium.webdriver.common.by import By

    h, _ = history
    visit(browser, dashboard.url + "/")
    for (app, env), (tag, digest, model_sha) in pins_in_repo(h).items():
        cell = browser.find_element(By.CSS_SELECTOR, f'td.cell[data-app="{app}"][data-env="{env}"]')
        assert cell.get_attribute("data-digest") == digest
        assert cell.get_attribute("data-model-sha256") == model_sha
        text = cell.text
        assert tag in text and digest.split(":")[1][:12] in text and "iris-logreg@" in text
    # dev's new build waits for staging's 30-minute soak: a countdown of about 20 minutes.
    held = browser.find_element(By.CSS_SELECTOR, '#app-ai-app .promotion[data-src="dev"][data-dst="staging"]')
    countdown = held.find_element(By.CSS_SELECTOR, ".countdown")
    until = datetime.fromisoformat(countdown.get_attribute("data-until"))
    assert timedelta(minutes=15) < until - datetime.now(UTC) <= timedelta(minutes=20, seconds=5)
    assert "soak" in held.text and "m" in countdown.text


def test_links_between_pages_work(dashboard, browser, history) -> None:
    from selenium.webdriver.common.by import By

    _, shas = history
    visit(browser, dashboard.url + "/")
    # Every link of the matrix page opens a page without errors.
    hrefs = sorted({a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "a[href]")})
    assert any("/diff?" in href for href in hrefs) and any("/env/prod" in href for href in hrefs)
    for href in hrefs:
        visit(browser, href)
        assert browser.find_element(By.TAG_NAME, "h1").text
    # From prod's history to the diff of the rollback: the image goes back from b to a.
    visit(browser, dashboard.url + "/")
    browser.find_element(By.ID, "nav-env-prod").click()
    entry = browser.find_element(By.CSS_SELECTOR, f'li.change[data-commit="{shas["rollback"]}"]')
    assert "rollback" in entry.text and "Riley Reviewer" in entry.text
    entry.find_element(By.CSS_SELECTOR, "a.difflink").click()
    assert not browser.find_elements(By.ID, "diff-error")
    deployment = browser.find_element(By.CSS_SELECTOR, 'details.resource[data-resource="Deployment/ai-app"]')
    lines = deployment.get_attribute("textContent").splitlines()
    assert any(line.startswith("-") and "image:" in line and pin("b").image.digest in line for line in lines)
    assert any(line.startswith("+") and "image:" in line and pin("a").image.digest in line for line in lines)
    # The navigation reaches the metrics page.
    browser.find_element(By.ID, "nav-metrics").click()
    assert browser.find_element(By.TAG_NAME, "h1").text == "DORA metrics"
    # A bad revision is a clear 400 page, not a crash.
    visit_bad = dashboard.url + "/diff?app=ai-app&a=prod@--output=/tmp/x&b=prod"
    browser.get(visit_bad)
    assert "is not a revision" in browser.find_element(By.ID, "diff-error").text


def test_metrics_page_equals_envbot_metrics_json(dashboard, browser, history) -> None:
    from selenium.webdriver.common.by import By

    h, _ = history
    proc = subprocess.run([sys.executable, "-m", "bot.main", "metrics", "--repo", str(h.remote), "--json",
                           "--offline", "--since", WINDOW[0], "--until", WINDOW[1]],
                          capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
                          timeout=300)
    report = json.loads(proc.stdout)
    visit(browser, dashboard.url + f"/metrics?since={WINDOW[0]}&until={WINDOW[1]}", screenshot="metrics")
    for env in report["environments"]:
        row = browser.find_element(By.CSS_SELECTOR, f'#figures tr[data-env="{env["env"]}"]')

        def shown(metric: str, row=row) -> str:
            return row.find_element(By.CSS_SELECTOR, f'td[data-metric="{metric}"]').get_attribute("data-value")

        expected = {
            "deployments": env["deployment_frequency"]["deployments"],
            "per_week": env["deployment_frequency"]["per_week"],
            "lead_median_seconds": env["lead_time_for_changes"]["median_seconds"],
            "lead_commits": env["lead_time_for_changes"]["commits"],
            "change_failure_rate": env["change_failure_rate"]["rate"],
            "restore_median_seconds": env["time_to_restore"]["median_seconds"],
        }
        for metric, value in expected.items():
            assert shown(metric) == ("" if value is None else str(value)), (env["env"], metric)
    prod = next(e for e in report["environments"] if e["env"] == "prod")
    assert prod["deployment_frequency"]["deployments"] == 7
    # The charts are inline SVG drawn by the server: four of them, nothing fetched.
    charts = browser.find_elements(By.CSS_SELECTOR, "svg.chart")
    assert len(charts) == 4
    assert browser.find_elements(By.CSS_SELECTOR, "svg.chart rect[fill]")
    resources = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    assert all(r.startswith(dashboard.url) for r in resources), resources


def test_refreshes_from_the_remote(dashboard, browser, history) -> None:
    from selenium.webdriver.common.by import By

    h, _ = history
    new = pin("g")
    h.update("prod", new, datetime.now(UTC).isoformat(), app="other")
    deadline = time.monotonic() + 60
    while True:
        visit(browser, dashboard.url + "/")
        cell = browser.find_element(By.CSS_SELECTOR, 'td.cell[data-app="other"][data-env="prod"]')
        if cell.get_attribute("data-digest") == new.image.digest:
            break
        assert time.monotonic() < deadline, "the dashboard did not pick up the new commit within 60s"
        time.sleep(1)
    assert browser.find_element(By.ID, "head").get_attribute("data-head") == git(h.remote, "rev-parse", "main")
