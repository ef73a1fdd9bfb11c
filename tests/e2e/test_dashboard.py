"""The dashboard in a real browser: headless Chromium (Debian's chromium and
chromium-driver, which scripts/test installs) driven by selenium, against a real
`bascule run` with two workers under load."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.backends import named
from e2e.proxy import config, free_port, wait_until
from e2e.supervised import failures, listening, running, steady_load

# BASCULE_SCREENSHOT=docs/dashboard.png keeps the screenshot (the one in the docs is made so)
SCREENSHOT = os.environ.get("BASCULE_SCREENSHOT")


@pytest.fixture
def browser() -> Iterator[Any]:
    chromedriver = shutil.which("chromedriver")
    if chromedriver is None or shutil.which("chromium") is None:
        message = "chromium and chromium-driver are not installed (scripts/test installs them)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or ""
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    try:
        yield driver
    finally:
        driver.quit()


# The table is rebuilt every second: read a row, or click in it, in one script run, so
# that no element goes stale between finding it and using it.
READ_ROW = """
const row = document.querySelector(`tr[data-target="${arguments[0]}"]`);
if (!row) return {};
const cells = {};
for (const td of row.cells) cells[td.className] = td.textContent;
return cells;
"""
CLICK = """
const button = document.querySelector(`tr[data-target="${arguments[0]}"] button.${arguments[1]}`);
if (!button) return false;
button.click();
return true;
"""


def cells(driver: Any, target: str) -> dict[str, str]:
    return dict(driver.execute_script(READ_ROW, target))


def click(driver: Any, target: str, button: str) -> bool:
    return bool(driver.execute_script(CLICK, target, button))


def test_the_dashboard_shows_live_numbers_and_drains_a_target(backend, tmp_path, browser):
    from selenium.webdriver.common.by import By

    port, admin = free_port(), free_port()
    a, b = backend(named("a", 0.002)), backend(named("b", 0.002))
    cfg = {
        **config(a, b, **listening(port)),
        "workers": 2,
        "admin": {"bind": f"127.0.0.1:{admin}"},
    }
    with running(cfg, tmp_path) as bascule:
        assert wait_until(lambda: len(bascule.workers()) == 2, timeout=10)
        browser.get(f"http://127.0.0.1:{admin}/")
        assert browser.title == "Bascule"
        assert wait_until(lambda: cells(browser, a.address).get("state") == "up", timeout=10)
        assert cells(browser, a.address)["rps"] == "0.0"

        stop, results = threading.Event(), []
        threads = steady_load(port, stop, results, workers=2)
        try:
            busy = lambda: float(cells(browser, a.address).get("rps") or 0) > 0  # noqa: E731
            assert wait_until(busy, timeout=10)  # the page updates by itself
            header = browser.find_element(By.ID, "node").text
            assert "2 worker(s)" in header

            assert wait_until(lambda: click(browser, a.address, "drain"))
            drained = lambda: cells(browser, a.address).get("state") == "draining"  # noqa: E731
            assert wait_until(drained, timeout=10)
            time.sleep(0.5)  # every worker has applied it
            served = len(results)
            time.sleep(1.0)
            assert not any(r.endswith(b"a") for r in results[served:])
            assert wait_until(lambda: click(browser, a.address, "enable"))
            assert wait_until(lambda: cells(browser, a.address).get("state") == "up", timeout=10)
            time.sleep(2.0)  # a few more points on the charts
            shot = Path(SCREENSHOT) if SCREENSHOT else tmp_path / "dashboard.png"
            assert browser.save_screenshot(str(shot))
            assert shot.read_bytes().startswith(b"\x89PNG")
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        assert failures(results) == []
        problems = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert problems == []  # no console errors
