"""The Fleet page in a real browser: headless Chromium, driven by Selenium and chromedriver.

A person behind basic auth opens the page while w2 is paused with tasks waiting in its
queue, sees the pause counting down, the depth and the event, finds the pause on
Flower's own worker list too, clicks Resume and sees w2 up with its queue drained, then
drains w1 ahead of a deploy with the Drain button.
Set ``RFQUEUE_FLEET_SCREENSHOT=docs/fleet-page.png`` to keep the screenshot taken
mid-run (the README's picture).
"""

from __future__ import annotations

import base64
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from rfqueue.demo.fleet import Fleet, RedisServer, wait_for
from rfqueue.table import FailureTable
from tests.conftest import require_binary
from tests.integration.conftest import active_queues
from tests.integration.fleet_page import decided, depth, paused_with_backlog, start_rfqueue_flower

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CREDENTIALS = "admin:browser-test-pw"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,900",
)


def _selenium() -> Any:
    try:
        import selenium.webdriver
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("selenium is required in CI (the dev extra) but is not installed")
        pytest.skip("selenium not installed")
    return selenium.webdriver


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """Debian's chromium, headless, with a fresh profile; quit (with chromedriver) after."""
    require_binary("chromium")
    require_binary("chromedriver")
    webdriver = _selenium()
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    service = Service(shutil.which("chromedriver"), log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.execute_cdp_cmd("Network.enable", {})
    try:
        yield driver
    finally:
        driver.quit()


def log_in(driver: Any, credentials: str) -> None:
    """What the browser sends once a person has answered the basic-auth prompt."""
    token = base64.b64encode(credentials.encode()).decode()
    driver.execute_cdp_cmd(
        "Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {token}"}}
    )


def seen(driver: Any, css: str, timeout: float = 20) -> Any:
    """The element matching ``css`` once it is on the page (polled until ``timeout``)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css))
    )


def until(driver: Any, predicate: Any, timeout: float = 20, what: str = "") -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(
        lambda d: predicate(), message=what
    )


def row_of(driver: Any, worker: str) -> Any:
    return seen(driver, f'#rfqueue-workers tr[data-worker="{worker}"]')


def cell(driver: Any, worker: str, index: int) -> str:
    from selenium.webdriver.common.by import By

    return str(row_of(driver, worker).find_elements(By.TAG_NAME, "td")[index].text)


def navigation_status(driver: Any) -> int:
    """The HTTP status of the page the browser is on (Navigation Timing's responseStatus)."""
    script = "return performance.getEntriesByType('navigation')[0].responseStatus"
    return int(driver.execute_script(script))


def seconds_left(text: str) -> int:
    """``4m 05s left`` -> 245."""
    match = re.fullmatch(r"(?:(\d+)m )?(\d+)s left", text.strip())
    assert match, f"no countdown in {text!r}"
    return int(match.group(1) or 0) * 60 + int(match.group(2))


def test_a_person_sees_the_pause_and_resumes_the_worker(
    fleet: Fleet,
    redis_server: RedisServer,
    redis_client: Any,
    app: Any,
    browser: Any,
    tmp_path: Path,
):
    from selenium.webdriver.common.by import By

    # Given w2 paused with tasks waiting in its queue, and rfqueue flower behind basic auth
    scene = paused_with_backlog(fleet, redis_server, redis_client, app)
    flower = start_rfqueue_flower(fleet, CREDENTIALS)
    table = FailureTable(redis_client, "rfqueue")
    before = decided(table, scene.w2)

    # When a person with the wrong password opens the Fleet page
    log_in(browser, "admin:wrong-password")
    browser.get(flower.url("/rfqueue"))
    # Then the browser got 401 (it would ask again), there is no Fleet page, nothing changed
    assert navigation_status(browser) == 401
    assert not browser.find_elements(By.ID, "rfqueue-fleet")
    assert decided(table, scene.w2) == before

    # When they open it with the right password
    log_in(browser, CREDENTIALS)
    browser.get(flower.url("/rfqueue"))
    assert navigation_status(browser) == 200
    # Then w2 is paused, with a live countdown, the reason and the depth of its queue
    until(browser, lambda: "paused" in cell(browser, scene.w2, 1), what="w2 shown paused")
    first = seconds_left(
        row_of(browser, scene.w2).find_element(By.CSS_SELECTOR, ".rfqueue-countdown").text
    )
    assert 100 < first <= 120
    assert "manual" in cell(browser, scene.w2, 2) and "kernel upgrade" in cell(browser, scene.w2, 2)
    assert cell(browser, scene.w2, 5) == str(scene.depth)
    assert "up" in cell(browser, scene.w1, 1)
    until(
        browser,
        lambda: (
            seconds_left(
                row_of(browser, scene.w2).find_element(By.CSS_SELECTOR, ".rfqueue-countdown").text
            )
            < first
        ),
        timeout=5,
        what="the countdown to count down",
    )
    # And the pause is the latest event, the budget says one worker is out
    events = seen(browser, "#rfqueue-events tbody tr.rfqueue-event").text
    assert scene.w2 in events and "pause" in events and "kernel upgrade" in events
    assert browser.find_element(By.ID, "rfqueue-budget").text == "1 of 1"
    shot = Path(os.environ.get("RFQUEUE_FLEET_SCREENSHOT") or tmp_path / "fleet-page.png")
    assert browser.save_screenshot(str(shot))

    # And Flower's own worker list marks w2, which Flower itself shows Online, as paused
    browser.get(flower.url("/workers"))
    badge = seen(browser, "#workers-table .rfqueue-badge", timeout=30)
    assert badge.text.startswith("rfqueue: paused")
    worker_cell = badge.find_element(By.XPATH, "./ancestor::tr/td[1]")
    assert worker_cell.text.strip() == scene.w2
    # And Flower's page of w2 says what rfqueue says
    browser.get(flower.url(f"/worker/{quote(scene.w2)}"))
    banner = seen(browser, "#rfqueue-worker-state", timeout=30)
    assert banner.text.startswith("rfqueue: paused") and f"{scene.depth} waiting" in banner.text
    assert browser.save_screenshot(str(tmp_path / "worker-page.png"))
    seen(browser, "nav .rfqueue-nav a").click()  # the Fleet link in Flower's navigation bar

    # When they click Resume on w2's row
    seen(browser, f'button[data-action="resume"][data-worker="{scene.w2}"]').click()

    # Then the page says so, shows w2 up, and its queue drains to zero
    message = seen(browser, "#rfqueue-message.alert-success")
    assert message.text == f"resumed {scene.w2}"
    until(browser, lambda: "up" in cell(browser, scene.w2, 1), what="w2 shown up")
    until(browser, lambda: cell(browser, scene.w2, 5) == "0", timeout=30, what="w2 drained")
    assert table.entries()[scene.w2].state.value == "up"
    assert depth(redis_client, scene.w2) == 0

    # When they type a reason and click Drain on w1's row, ahead of a deploy
    reason = browser.find_element(By.ID, "rfqueue-reason")
    reason.clear()
    reason.send_keys("deploy 42")
    seen(browser, f'button[data-action="drain"][data-worker="{scene.w1}"]').click()

    # Then the page says so and shows w1 draining with the reason; the table agrees
    until(
        browser,
        lambda: browser.find_element(By.ID, "rfqueue-message").text.startswith(
            f"draining {scene.w1} (at the latest until "
        ),
        what="the drain's message",
    )
    until(browser, lambda: "draining" in cell(browser, scene.w1, 1), what="w1 shown draining")
    assert "deploy 42" in cell(browser, scene.w1, 2)
    entry = table.entries()[scene.w1]
    assert (entry.state.value, entry.note) == ("draining", "deploy 42")
    # And w1 stops consuming its queue, as `celery inspect active_queues` reports
    wait_for(
        lambda: f"rfqueue.{scene.w1}" not in active_queues(redis_server, scene.w1),
        20,
        interval=0.2,
        what="w1 to stop consuming its queue",
    )
