"""The status page in real headless Chromium (Debian `chromium` + `chromium-driver`, no downloaded
browser): it loads and shows the pipelines; a run triggered by a push appears and turns green
without a reload; its live log lines appear in order. A screenshot is kept in test-artifacts/."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from tests.gitutil import GitRepo
from tests.servekit import Serve

pytestmark = pytest.mark.docker
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
TALKER = (
    "import time\n"
    "for i in range(8):\n"
    "    print(f'step {i} of 8', flush=True)\n"
    "    time.sleep(0.5)\n"
)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    if not Path(DRIVER).exists():
        pytest.fail("chromium-driver is not installed: run scripts/setup")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium'}",
        "--window-size=1300,1000",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def wait_for(predicate: Callable[[], object], timeout_s: float, message: str) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            found = predicate()
        except Exception:  # noqa: BLE001  (the DOM changes under us while it re-renders)
            found = None
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(message)


def test_page_shows_pipelines_and_a_pushed_run_goes_green_with_its_live_log(
    git_repo: GitRepo,
    serve_factory: Callable[[str], Serve],
    browser: webdriver.Chrome,
) -> None:
    git_repo.commit(
        {
            "pipelines/talker/pipeline.yaml": "description: prints as it goes\nnetwork: none\non_push: true\n"
            "schedules: [{cron: '30 2 * * *', timezone: Europe/Berlin}]\n",
            "pipelines/talker/main.py": "print('v1')\n",
        }
    )
    serve = serve_factory(str(git_repo.path))
    serve.start()
    browser.get(f"http://127.0.0.1:{serve.port}/")
    row = wait_for(
        lambda: browser.find_element(By.CSS_SELECTOR, '[data-pipeline="talker"]'),
        20,
        "no pipeline row",
    )
    assert "every day at 02:30 (Europe/Berlin)" in row.text  # type: ignore[attr-defined]
    assert "prints as it goes" in row.text  # type: ignore[attr-defined]
    page_id = browser.execute_script("return window.performance.timeOrigin")
    git_repo.commit({"pipelines/talker/main.py": TALKER}, "make it talk")
    click_running = (
        "const mark = document.querySelector('[data-pipeline=\"talker\"] .mark.running');"
        "if (mark) { mark.click(); return true; } return false;"
    )
    wait_for(
        lambda: browser.execute_script(click_running),
        30,
        "the pushed run did not appear as running",
    )
    wait_for(
        lambda: "step 2 of 8" in browser.find_element(By.ID, "run-log").text,
        20,
        "no live log lines",
    )
    wait_for(
        lambda: browser.find_elements(By.CSS_SELECTOR, '[data-pipeline="talker"] .mark.succeeded'),
        30,
        "the run did not turn green",
    )
    wait_for(
        lambda: "step 7 of 8" in browser.find_element(By.ID, "run-log").text,
        10,
        "the log did not finish",
    )
    text = browser.find_element(By.ID, "run-log").text
    steps = re.findall(r"step \d of 8", text)
    assert steps == [f"step {i} of 8" for i in range(8)]  # in order, each once
    assert (
        browser.execute_script("return window.performance.timeOrigin") == page_id
    )  # never reloaded
    wait_for(
        lambda: "succeeded" in browser.find_element(By.ID, "run-facts").text,
        10,
        "facts not updated",
    )
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "status-page.png"))
    assert (ARTIFACTS / "status-page.png").stat().st_size > 10_000
    # a commit that cannot apply at all: the page says which and why, without a reload
    git_repo.commit({"fastflow.yaml": "defaults:\n  timeout: soon\n"}, "break the defaults")
    box = wait_for(
        lambda: (lambda e: e if e.is_displayed() and "not applied" in e.text else None)(
            browser.find_element(By.ID, "problems")
        ),
        30,
        "the rejected commit is not shown",
    )
    assert "fastflow.yaml:2:12: defaults.timeout: 'soon' is not a duration" in box.text  # type: ignore[attr-defined]
    assert browser.find_elements(By.CSS_SELECTOR, '[data-pipeline="talker"]')  # still applied
    browser.save_screenshot(str(ARTIFACTS / "status-page-rejected.png"))
    assert browser.execute_script("return window.performance.timeOrigin") == page_id
    serve.stop()
