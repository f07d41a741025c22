"""The Space in a real headless Chromium (Debian's ``chromium`` + ``chromium-driver``, driven by Selenium): upload an
example clip, classify it, read the label output and save a screenshot (to pytest's tmp_path).

Skips with a reason when Chromium or its driver is not installed (``setup.sh`` installs them; ``--no-browser`` skips).
"""

from __future__ import annotations

import os
import shutil
import time

import pytest

pytest.importorskip("gradio", reason="the demo extra (gradio) is not installed")
selenium = pytest.importorskip("selenium", reason="selenium is not installed")

from test_space import free_port, load_app_module  # noqa: E402


def _find(*names):
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary = os.environ.get("HF_ALM_CHROMIUM") or _find("chromium", "chromium-browser", "google-chrome")
    driver_path = os.environ.get("HF_ALM_CHROMEDRIVER") or _find("chromedriver", "chromium-driver")
    if not binary or not driver_path:
        pytest.skip(f"no headless Chromium found (chromium: {binary}, chromedriver: {driver_path}); install Debian's "
                    f"'chromium' and 'chromium-driver' packages (setup.sh does) to run the browser test")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1600", "--disable-extensions", "--no-first-run"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    app = load_app_module()
    demo = app.build_demo(cache_dir=tmp_path_factory.mktemp("browser-cache"), max_seconds=5)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(), quiet=True,
                            ssr_mode=False)
    yield {"url": url, "demo": demo, **demo.hf_alm_backends}
    demo.close()


def _wait(predicate, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as err:  # noqa: BLE001 - element not ready yet
            last = err
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what} (last error: {last!r})")


def test_upload_classify_read_label_and_screenshot(browser, served, tmp_path):
    from selenium.webdriver.common.by import By

    labels = ["siren", "bell", "knocking"]
    browser.get(served["url"])
    _wait(lambda: browser.find_element(By.ID, "zs-submit").is_displayed(), what="the page to render")
    assert "random weights" in browser.page_source  # the warning about the tiny random models is visible

    labels_box = browser.find_element(By.CSS_SELECTOR, "#zs-labels textarea, #zs-labels input")
    labels_box.clear()
    labels_box.send_keys(", ".join(labels))
    upload = _wait(lambda: browser.find_element(By.CSS_SELECTOR, "#zs-audio input[type=file]"),
                   what="the audio upload input")
    upload.send_keys(str(served["examples"]["siren"]))
    _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#zs-audio audio, #zs-audio [data-testid='waveform-x']")
          or "siren" in browser.find_element(By.ID, "zs-audio").text, timeout=60, what="the clip to upload")
    time.sleep(0.5)
    browser.find_element(By.ID, "zs-submit").click()

    def label_text():
        text = browser.find_element(By.ID, "zs-label").text
        return text if any(label in text for label in labels) and "%" in text else None

    text = _wait(label_text, timeout=120, what="the zero-shot label output")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    assert lines[0] == "Zero-shot prediction", text  # the component's label, then the predicted class
    top = lines[1]
    assert top in labels and all(label in lines for label in labels), text
    shot = tmp_path / "zero_shot.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000

    # the page shows what the model says: the top label is the model's arg-max for this clip
    from hf_alm.data.audio import load_audio

    clap = served["clap"]
    clip = load_audio(str(served["examples"]["siren"]), clap.sampling_rate).numpy()
    _, probs = clap.scores(clip, [f"This is a sound of {x}." for x in labels])
    assert top == labels[int(probs.argmax())]
