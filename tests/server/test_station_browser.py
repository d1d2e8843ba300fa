"""The flows a nurse clicks through, in a real browser: `cryprint serve` on a free loopback port,
three babies enrolled through the page, a cry identified (its baby first), two cries compared,
one baby discharged after the confirmation.

Headless Chromium from the system (Debian: `apt-get install chromium chromium-driver`) driven
by Selenium. In CI (CI=true) a missing browser fails the test; elsewhere it skips, saying how to
install it. With CRYPRINT_SCREENSHOTS=FOLDER each page's screenshot is written there (the
README's come from here).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from station_helpers import cry_files, running_station

BABIES = ("anonymous000", "anonymous001", "anonymous002")
INSTALL = "install it: apt-get install chromium chromium-driver (Debian), then rerun"


def _browser_paths() -> tuple[str, str] | None:
    browser = next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@pytest.fixture
def browser():
    paths = _browser_paths()
    if paths is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"no headless Chromium and chromedriver: {INSTALL}")
        pytest.skip(f"no headless Chromium and chromedriver: {INSTALL}")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = paths[0]
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1100,1000"):  # fmt: skip
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(paths[1]), options=options)
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()


def _shoot(driver, name: str) -> None:
    folder = os.environ.get("CRYPRINT_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / f"station_{name}.png"))


def _wait_text(driver, element_id: str, expected: str) -> None:
    """Wait (up to a minute: the station embeds) until the element holds ``expected``."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    located = expected_conditions.text_to_be_present_in_element((By.ID, element_id), expected)
    try:
        WebDriverWait(driver, 60).until(located)
    except TimeoutException:
        page = driver.find_element(By.TAG_NAME, "main").text
        raise AssertionError(f"no {expected!r} in #{element_id}; the page says: {page}") from None


def test_a_nurse_enrols_identifies_compares_and_discharges(
    browser, station_model: Path, small_corpus: Path, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    environment = {"CRYPRINT_STORE": str(tmp_path / "store.sqlite")}
    with running_station(station_model, tmp_path / "ward.db", environment) as (url, _):
        browser.get(url + "/")
        assert browser.find_element(By.ID, "empty").text.startswith("No baby")
        for baby in BABIES:
            browser.find_element(By.ID, "baby-id").send_keys(f"cot {baby[-1]}")
            enrolled = cry_files(small_corpus, baby, "B")[0]
            browser.find_element(By.ID, "enrol-files").send_keys(str(enrolled))
            browser.find_element(By.ID, "enrol-button").click()
            _wait_text(browser, "message", f"enrolled 1 recording(s) for cot {baby[-1]}")
        babies = [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "#babies .baby")]
        assert babies == ["cot 0", "cot 1", "cot 2"]
        _shoot(browser, "ward")

        browser.get(url + "/identify")
        cry = cry_files(small_corpus, BABIES[1], "B")[0]  # the cry enrolled for cot 1
        browser.find_element(By.ID, "cry-file").send_keys(str(cry))
        browser.find_element(By.ID, "identify-button").click()
        _wait_text(browser, "result", "cot")
        first = browser.find_element(By.CSS_SELECTOR, "#candidates tbody tr .baby").text
        assert first == "cot 1"
        assert browser.find_element(By.ID, "answer").text
        _shoot(browser, "identify")

        browser.get(url + "/verify")
        browser.find_element(By.ID, "cry-a").send_keys(str(cry))
        browser.find_element(By.ID, "cry-b").send_keys(
            str(cry_files(small_corpus, BABIES[1], "D")[0])
        )
        browser.find_element(By.ID, "verify-button").click()
        verdict = browser.find_element(By.ID, "verdict").text
        assert "same baby" in verdict or "different babies" in verdict
        _shoot(browser, "verify")

        browser.get(url + "/")
        browser.find_elements(By.CSS_SELECTOR, "#babies a.remove")[2].click()
        assert "Remove cot 2?" in browser.find_element(By.TAG_NAME, "h1").text
        browser.find_element(By.ID, "confirm-remove").click()
        _wait_text(browser, "message", "removed cot 2")
        babies = [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "#babies .baby")]
        assert babies == ["cot 0", "cot 1"]
        audit = browser.find_element(By.ID, "audit").text
        assert "remove" in audit and "enrol" in audit

        browser.get(url + "/model")
        assert browser.find_element(By.ID, "facts").text
        _shoot(browser, "model")
