"""The drawing page in a real browser: headless Chromium draws, uploads and clears, and the page shows what predict says."""

from __future__ import annotations

import time

import base64
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mnist_zoo.cli import cli
from tests.helpers import copy_runs, start_server, stop_server
from tests.skips import import_or_skip, skip_for

sync_api = import_or_skip("playwright.sync_api")
import_or_skip("starlette")


def chromium_path() -> str:
    """Debian's chromium (browsers cannot be downloaded here; .ci/run installs it with apt-get)."""
    path = os.environ.get("MNIST_ZOO_TEST_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        skip_for("chromium", "no chromium on PATH (nor MNIST_ZOO_TEST_CHROMIUM)")
    return path


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_runs):
    """`mnist-zoo serve` running two tiny trained runs; yields (url, runs folder)."""
    folder = tmp_path_factory.mktemp("page-runs")
    copy_runs(tiny_runs, folder, ["linear", "cnn"])
    process, url = start_server("--runs-dir", str(folder), cwd=folder)
    yield url, folder
    code, _, stderr = stop_server(process)
    assert code == 0, stderr


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(),
                                             args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser, served):
    context = browser.new_context(viewport={"width": 1100, "height": 760}, has_touch=True)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    # The page runs under its Content-Security-Policy: anything it blocks is reported on the console.
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.goto(served[0])
    page.wait_for_selector("article.model")
    yield page
    context.close()
    errors = [error for error in errors if "status of 400" not in error]  # the bad upload's answer
    assert not errors, f"the page raised: {errors}"


def wait_until_answered(page) -> None:
    """Until the answer shown is the current drawing's (no request out, none waiting).

    Polled from here: Playwright's wait_for_function evaluates its text with eval(), which the
    page's Content-Security-Policy forbids, as it should.
    """
    deadline = time.monotonic() + 30
    while not page.evaluate("document.body.dataset.idle === 'true' && document.body.dataset.state !== 'busy'"):
        assert time.monotonic() < deadline, "the page did not answer within 30 s"
        time.sleep(0.05)


def draw_seven(page) -> tuple[int, dict]:
    """Draws a 7 in one mouse stroke on the canvas.

    Returns how many predictions the page asked for before the button went up, and the answers
    it showed for the bar alone, with the button still down.
    """
    requests = []
    page.on("request", lambda request: requests.append(request) if request.url.endswith("top_k=3") else None)
    box = page.locator("#pad").bounding_box()
    x, y, size = box["x"], box["y"], box["width"]
    page.mouse.move(x + 0.25 * size, y + 0.22 * size)
    page.mouse.down()
    for step in range(1, 13):  # the bar, left to right
        page.mouse.move(x + (0.25 + 0.5 * step / 12) * size, y + 0.22 * size)
    wait_until_answered(page)  # mid-stroke: the answer for the bar so far
    bar_answers = shown(page)
    for step in range(1, 17):  # the stem, down to the lower left
        page.mouse.move(x + (0.75 - 0.3 * step / 16) * size, y + (0.22 + 0.6 * step / 16) * size)
    wait_until_answered(page)
    asked_while_drawing = len(requests)
    page.mouse.up()
    wait_until_answered(page)
    return asked_while_drawing, bar_answers


def shown(page) -> dict:
    """Each card's answer as the page shows it: {model id: (digit, [(class, probability), ...])}."""
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('article.model')].map(card => [
        card.dataset.modelId,
        [card.querySelector('.digit').textContent,
         [...card.querySelectorAll('.bars li')].map(row => [row.dataset.class, Number(row.dataset.probability)])]]))""")


def seen_pixels(page) -> list[int]:
    """The 28x28 preview's gray values, as drawn on the page."""
    return page.evaluate("""() => Array.from(document.getElementById('seen').getContext('2d')
        .getImageData(0, 0, 28, 28).data.filter((value, index) => index % 4 === 0))""")


def predict_says(model: Path, picture: Path) -> dict:
    result = CliRunner().invoke(cli, ["predict", str(model), str(picture), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)[0]


def assert_page_agrees_with_predict(page, runs: Path, picture: Path) -> None:
    answers = shown(page)
    assert sorted(answers) == ["run-cnn", "run-linear"]
    for model_id, (digit, bars) in answers.items():
        expected = predict_says(runs / model_id, picture)
        assert digit == expected["prediction"]
        assert [name for name, _ in bars] == [entry["class"] for entry in expected["top_k"]]
        np.testing.assert_allclose([probability for _, probability in bars],
                                   [entry["probability"] for entry in expected["top_k"]], rtol=0, atol=1e-6)


def test_a_drawn_digit_gets_the_answers_predict_gives_for_the_same_picture(page, served, tmp_path):
    from mnist_zoo.inference.pictures import prepare_picture

    asked, bar_answers = draw_seven(page)
    # The answers update while drawing, not only at the end: the pen down, the bar, the stem.
    assert asked >= 3 and all(digit != "–" for digit, _ in bar_answers.values()), (asked, bar_answers)
    data_url = page.evaluate("document.getElementById('pad').toDataURL('image/png')")
    picture = tmp_path / "drawing.png"
    picture.write_bytes(base64.b64decode(data_url.split(",", 1)[1]))
    assert_page_agrees_with_predict(page, served[1], picture)
    assert seen_pixels(page) == prepare_picture(picture).ravel().tolist()  # what the models saw
    page.screenshot(path=str(tmp_path / "page.png"))


def test_an_uploaded_photo_is_predicted_as_predict_predicts_the_file(page, served, tmp_path, real_mnist):
    from PIL import Image

    photo = tmp_path / "photo.jpg"  # dark ink on light paper, as a phone photo is
    Image.fromarray(255 - real_mnist.test_images[3]).resize((300, 240)).convert("RGB").save(photo, quality=92)
    page.set_input_files("#upload", str(photo))
    wait_until_answered(page)
    assert page.locator("#photo").is_visible()
    assert_page_agrees_with_predict(page, served[1], photo)


def test_a_photo_over_the_servers_pixel_limit_is_scaled_down_by_the_page(page, tmp_path, real_mnist):
    from PIL import Image

    from mnist_zoo.web.inputs import MAX_PICTURE_PIXELS

    photo = tmp_path / "large.jpg"  # 20 megapixels: the API alone refuses it
    Image.fromarray(255 - real_mnist.test_images[3]).resize((5000, 4000)).convert("RGB").save(photo, quality=80)
    assert 5000 * 4000 > MAX_PICTURE_PIXELS
    page.set_input_files("#upload", str(photo))
    wait_until_answered(page)
    assert page.evaluate("document.body.dataset.state") == "shown", page.locator("#status").text_content()
    assert all(digit == "0" for digit, _ in shown(page).values()), shown(page)


def test_clear_stroke_width_touch_and_a_bad_upload(page, tmp_path):
    page.locator("#stroke").fill("30")
    assert page.locator("#stroke-value").text_content() == "30"
    box = page.locator("#pad").bounding_box()
    page.touchscreen.tap(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)  # a finger's dot
    wait_until_answered(page)
    assert all(digit != "–" for digit, _ in shown(page).values())
    page.click("#clear")
    assert all(digit == "–" and not bars for digit, bars in shown(page).values())
    assert "Draw a digit" in page.locator("#status").text_content()
    not_a_picture = tmp_path / "notes.png"
    not_a_picture.write_text("these are not pixels")
    page.set_input_files("#upload", str(not_a_picture))
    wait_until_answered(page)
    status = page.locator("#status").text_content()
    assert page.evaluate("document.body.dataset.state") == "error"
    assert "not a readable image" in status and "Traceback" not in status


def test_the_explain_toggle_overlays_what_explain_computes_for_the_drawing(page, served, tmp_path):
    import keras

    from mnist_zoo.explanations.attribution import integrated_gradients
    from mnist_zoo.explanations.network import explainable_model, model_inputs
    from mnist_zoo.inference.pictures import prepare_picture

    card = page.locator('article[data-model-id="run-cnn"]')
    card.locator("summary").click()  # opened before drawing: it explains each new answer
    draw_seven(page)
    deadline = time.monotonic() + 60
    script = """() => { const card = document.querySelector('article[data-model-id="run-cnn"]');
        return card.dataset.explained === 'true' && !card.explaining && card.explanation.pixels.join() ===
            Array.from(document.getElementById('seen').getContext('2d').getImageData(0, 0, 28, 28).data
                .filter((value, index) => index % 4 === 0)).join(); }"""
    while not page.evaluate(script):
        assert time.monotonic() < deadline, "the card did not show an explanation of the drawing within 60 s"
        time.sleep(0.1)
    explanation = page.evaluate("document.querySelector('article[data-model-id=\"run-cnn\"]').explanation")
    data_url = page.evaluate("document.getElementById('pad').toDataURL('image/png')")
    picture = tmp_path / "drawing.png"
    picture.write_bytes(base64.b64decode(data_url.split(",", 1)[1]))
    image = prepare_picture(picture)
    assert explanation["pixels"] == image.ravel().tolist()
    # What `mnist-zoo explain drawing.png` computes for the same picture, in this process.
    result = CliRunner().invoke(cli, ["explain", str(served[1] / "run-cnn"), str(picture), "--json", "--mistakes", "0",
                                      "--only", "attributions", "--output-dir", str(tmp_path / "explain")])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)["images"][0]
    assert record["prediction"] == explanation["prediction"]
    model, _ = explainable_model(keras.saving.load_model(served[1] / "run-cnn" / "best.keras"))
    expected = integrated_gradients(model, model_inputs(model, image[None]), [record["class_index"]])[0]
    assert expected.completeness_error == pytest.approx(record["integrated_gradients"][0]["completeness_error"])
    np.testing.assert_allclose(explanation["integrated_gradients"], expected.attributions.ravel(), atol=1e-5)
    # The overlay is drawn: its strongest red is where the attributions are largest.
    overlay = np.array(page.evaluate("""() => Array.from(document.querySelector(
        'article[data-model-id="run-cnn"] canvas.saliency').getContext('2d').getImageData(0, 0, 28, 28).data)""")
                       ).reshape(28, 28, 4)
    strongest = int(np.argmax(explanation["integrated_gradients"]))
    assert overlay.reshape(-1, 4)[strongest, 0] > 150 and overlay[..., :3].max() > 0
    assert page.locator('article[data-model-id="run-cnn"] .maps img').count() >= 2
    page.screenshot(path=str(tmp_path / "explained.png"), full_page=True)
