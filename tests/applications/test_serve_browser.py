"""`metalearn serve` end to end: a real headless Chromium draws, teaches and tries on the page.

The server is the `metalearn serve` command on a free port, serving a ProtoNet trained here
for a short while on Omniglot. Chromium and its driver come from Debian (`chromium`,
`chromium-driver`); `.ci/run` installs them, so under CI this test runs and never skips.
"""

from __future__ import annotations

import http.client
import itertools
import json
import math
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from applications.serve_fixtures import draw_symbol

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.data]

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
PAD = 280  # the canvas' CSS size
SHAPES = ("circle", "cross", "bar")
# (dx, dy, scale) of each drawing: three examples, then a new instance to try
VARIANTS = [(0, 0, 1.0), (-14, 8, 0.85), (12, -10, 1.1), (6, 12, 0.95)]


@pytest.fixture(scope="module")
def trained_run(data_root, cache_dir, tmp_path_factory) -> Path:
    """A ProtoNet meta-trained on 100 episodes (20-way 1-shot): far above chance already."""
    from metalearn.cli.main import main

    run = tmp_path_factory.mktemp("serve") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("METALEARN_CACHE", str(cache_dir))
        code = main(
            [
                "train",
                "--preset=protonet-omniglot-5w1s",
                "--data.n_way=20",
                "--model.hidden=32",
                "--train.steps=100",
                "--train.eval_every=0",
                "--eval.val_episodes=0",
                "--eval.episodes=4",
                f"--data.root={data_root}",
                f"--run-dir={run}",
            ]
        )
    assert code == 0
    return run


@pytest.fixture
def run_main(capsys):
    """Run ``metalearn`` in-process; return its exit code and keep its stdout in ``.out``."""
    from metalearn.cli.main import main

    def run(*argv: str) -> int:
        code = main(list(argv))
        run.out = capsys.readouterr().out
        return code

    return run


@pytest.fixture(scope="module")
def server(trained_run, tmp_path_factory):
    """The base URL of `metalearn serve RUN --port 0`, run as a separate process."""
    log = tmp_path_factory.mktemp("server") / "serve.log"
    command = [sys.executable, "-m", "metalearn.cli.main", "serve", str(trained_run), "--port=0"]
    with log.open("w") as out, subprocess.Popen(command, stdout=out, stderr=out) as process:
        deadline = time.monotonic() + 120
        while not (match := re.search(r"at (http://127\.0\.0\.1:\d+/)", log.read_text())):
            assert process.poll() is None, f"`metalearn serve` stopped: {log.read_text()}"
            assert time.monotonic() < deadline, f"`metalearn serve` printed {log.read_text()!r}"
            time.sleep(0.2)
        yield match.group(1)
        process.terminate()


def chromium_options(profile: Path):
    """Headless Chromium with a fresh profile that reaches nothing but the test server.

    Downloads go to ``profile/downloads`` without asking.
    """
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    downloads = {"download.default_directory": str(profile / "downloads")}
    options.add_experimental_option("prefs", {**downloads, "download.prompt_for_download": False})
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,1200",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    return options


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """A headless Chromium driven by Selenium through Debian's chromedriver."""
    if not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()):
        message = "needs Debian's chromium: apt-get install -y chromium chromium-driver"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tmp_path_factory.mktemp("chromium-profile")
    driver = webdriver.Chrome(options=chromium_options(profile), service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    driver.downloads = profile / "downloads"
    yield driver
    driver.quit()


def _strokes(shape: str, dx: float, dy: float, scale: float) -> list[list[tuple[float, float]]]:
    """Return the mouse strokes of a symbol, as points in the pad's CSS pixels."""
    c, r = PAD / 2, 85 * scale

    def at(x: float, y: float) -> tuple[float, float]:
        return c + dx + x * r, c + dy + y * r

    if shape == "circle":
        return [[at(math.cos(t / 16 * math.tau), math.sin(t / 16 * math.tau)) for t in range(17)]]
    if shape == "cross":
        return [[at(-0.8, -0.8), at(0, 0), at(0.8, 0.8)], [at(0.8, -0.8), at(0, 0), at(-0.8, 0.8)]]
    return [[at(0.05 * scale, -1.1), at(0, 0), at(-0.05 * scale, 1.1)]]


def _draw(driver, canvas, strokes) -> None:
    """Draw ``strokes`` with the mouse: press, move every few pixels as a hand does, release."""
    from selenium.webdriver.common.action_chains import ActionChains

    actions = ActionChains(driver, duration=10)
    for stroke in strokes:
        points = [
            (round(x0 + (x1 - x0) * i / 4), round(y0 + (y1 - y0) * i / 4))
            for (x0, y0), (x1, y1) in itertools.pairwise(stroke)
            for i in range(4)
        ] + [(round(stroke[-1][0]), round(stroke[-1][1]))]
        x, y = points[0]
        actions.move_to_element_with_offset(canvas, x - PAD // 2, y - PAD // 2).click_and_hold()
        for (x0, y0), (x1, y1) in itertools.pairwise(points):
            actions.move_by_offset(x1 - x0, y1 - y0)
        actions.release()
    actions.perform()


def _wait(driver, condition, what: str, timeout: float = 20.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(
        lambda d: condition(), message=f"waiting for {what}"
    )


def _count(driver, selector: str) -> int:
    from selenium.webdriver.common.by import By

    return len(driver.find_elements(By.CSS_SELECTOR, selector))


def _add_class_with_drawings(driver, shape: str) -> None:
    """Add the class by name, then draw and add three examples of it."""
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "class-name").send_keys(shape)
    driver.find_element(By.CSS_SELECTOR, "#add-class-form button").click()
    card = f'.class-card[data-class="{shape}"]'
    _wait(driver, lambda: _count(driver, card) == 1, f"class {shape}")
    for count, variant in enumerate(VARIANTS[:3], start=1):
        _draw(driver, driver.find_element(By.ID, "draw-pad"), _strokes(shape, *variant))
        driver.find_element(By.CSS_SELECTOR, f"{card} .add-drawing").click()
        _wait(driver, lambda n=count: _count(driver, f"{card} .thumb img") == n, "a thumbnail")


def _try(driver, shape: str) -> str:
    """Draw a new instance of ``shape`` on the try pad; return the class the page predicts."""
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "try-clear").click()
    strokes = _strokes(shape, *VARIANTS[3])
    _draw(driver, driver.find_element(By.ID, "try-pad"), strokes)
    result = driver.find_element(By.ID, "result")
    # the page marks how many strokes the prediction shown covers
    _wait(driver, lambda: result.get_attribute("data-strokes") == str(len(strokes)), "prediction")
    return driver.find_element(By.ID, "predicted").get_attribute("data-class")


# Each drawing is predicted alone with the support set's BatchNorm statistics (personalize's
# inductive prediction); normalised with its own statistics, a lone bar was taken for a circle.
def test_draw_three_symbols_teach_and_recognize_new_ones(browser, server, tmp_path):
    from selenium.webdriver.common.by import By

    driver = browser
    driver.get(server)
    info = driver.find_element(By.ID, "model-info")
    _wait(driver, lambda: info.text.startswith("run "), "the page")
    for shape in SHAPES:
        _add_class_with_drawings(driver, shape)
    driver.find_element(By.ID, "teach").click()
    status = driver.find_element(By.ID, "teach-status")
    _wait(driver, lambda: status.get_attribute("data-taught") == "yes", "teaching")
    predicted = {shape: _try(driver, shape) for shape in SHAPES}
    driver.save_screenshot(str(tmp_path / "serve.png"))
    assert (tmp_path / "serve.png").read_bytes()[:4] == b"\x89PNG"
    bars = driver.find_elements(By.CSS_SELECTOR, "#bars .bar")
    assert [bar.find_element(By.CLASS_NAME, "bar-label").text for bar in bars] == list(SHAPES)
    fills = [bar.find_element(By.CLASS_NAME, "bar-fill") for bar in bars]
    assert sum(fill.size["width"] for fill in fills) > 0
    # every thumbnail shows the learner's 28 x 28 view of an example
    sizes = driver.execute_script(
        "return [...document.querySelectorAll('.thumb img')].map(i => i.naturalWidth)"
    )
    assert sizes == [28] * 9
    assert predicted == {shape: shape for shape in SHAPES}


def test_load_a_personal_model_try_an_upload_and_save_it_again(
    browser, server, trained_run, tmp_path, run_main
):
    from selenium.webdriver.common.by import By

    for shape in SHAPES:
        for shift in (-4, 0, 4):
            path = tmp_path / "support" / shape / f"{shift}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(draw_symbol(shape, shift))
    me = tmp_path / "me.pt"
    assert run_main("adapt", str(trained_run), str(tmp_path / "support"), "-o", str(me)) == 0
    driver = browser
    driver.delete_all_cookies()  # a new session: nothing taught
    driver.get(server)
    _wait(driver, lambda: _count(driver, "#no-classes:not([hidden])") == 1, "an empty page")
    driver.find_element(By.ID, "load").send_keys(str(me))
    _wait(driver, lambda: _count(driver, ".thumb img") == 9, "the loaded examples")
    # `metalearn adapt` sorts class folders by name
    names = [
        card.get_attribute("data-class")
        for card in driver.find_elements(By.CSS_SELECTOR, ".class-card")
    ]
    assert names == sorted(SHAPES)
    status = driver.find_element(By.ID, "teach-status")
    assert status.get_attribute("data-taught") == "yes"
    query = tmp_path / "query.png"
    query.write_bytes(draw_symbol("cross", 2))
    driver.find_element(By.ID, "try-upload").send_keys(str(query))
    predicted = driver.find_element(By.ID, "predicted")
    _wait(driver, lambda: predicted.get_attribute("data-class") is not None, "a prediction")
    driver.find_element(By.ID, "save").click()
    saved = driver.downloads / "personal.pt"
    _wait(driver, lambda: saved.is_file() and saved.stat().st_size > 0, "the download")
    assert run_main("predict", str(saved), str(query), "--json") == 0
    # the page's answer for the upload is the one `metalearn predict` gives with the saved file
    assert predicted.get_attribute("data-class") == json.loads(run_main.out)[0]["class"]


def _request(base: str, method: str, path: str, body=None, headers=None):
    """Return the status, JSON body and headers of one request to the real server."""
    host, port = base.removeprefix("http://").rstrip("/").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, json.loads(data) if data else {}, response.headers


def test_the_server_keeps_serving_after_bad_requests(server):
    host, port = server.removeprefix("http://").rstrip("/").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as raw:
        raw.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        assert raw.recv(100).startswith(b"HTTP/1.1 400")
    status, _, headers = _request(server, "POST", "/api/classes", b'{"name": "bar"}')
    assert status == 201
    session = {"Cookie": headers["set-cookie"].split(";")[0], "Content-Type": "image/png"}
    chunks = (b"\x00" * 65536 for _ in range(100))  # 6.5 MB, sent without a Content-Length
    status, body, _ = _request(server, "POST", "/api/classes/bar/examples", chunks, session)
    assert status == 413
    assert "limit is 4,194,304" in body["error"]
    status, body, _ = _request(server, "POST", "/api/classes/bar/examples", b"{", session)
    assert status == 400
    status, body, _ = _request(
        server, "POST", "/api/classes/bar/examples", draw_symbol("bar"), session
    )
    assert status == 201
    status, body, _ = _request(server, "GET", "/api/state", headers=session)
    assert status == 200
    assert body["classes"] == [{"name": "bar", "examples": [0]}]
