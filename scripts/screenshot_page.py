"""Screenshot of the `mnist-zoo serve` page after a digit is drawn on it, for the README and docs/commands.md.

Starts `mnist-zoo serve` on a free port with the runs given, draws a 2 with mouse strokes in
headless Chromium (Debian's `chromium`, driven by Playwright), waits for every model's answer
and saves the page as a PNG.

    python scripts/screenshot_page.py runs/*-linear runs/*-mlp runs/*-cnn -o docs/serve.png
"""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess
import sys
import threading
from pathlib import Path


def start_server(runs: list[str]) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, "-m", "mnist_zoo", "serve", "--no-runs", "--port", "0", *runs],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in process.stdout:
        if line.startswith("Serving "):
            threading.Thread(target=process.stdout.read, daemon=True).start()
            return process, line.split(" at ", 1)[1].split()[0]
    raise SystemExit("the server did not start")


def draw_two(page) -> None:
    """A handwritten 2: an arc over the top, a diagonal down to the left, a stroke along the bottom."""
    box = page.locator("#pad").bounding_box()

    def at(x: float, y: float) -> tuple[float, float]:
        return box["x"] + x * box["width"], box["y"] + y * box["height"]

    points = [at(0.5 + 0.2 * math.cos(angle), 0.36 - 0.16 * math.sin(angle))
              for angle in [math.pi * (1 - step / 14) for step in range(15)]]  # over the top, left to right
    points += [at(0.7 - 0.4 * step / 10, 0.36 + 0.42 * step / 10) for step in range(1, 11)]
    points += [at(0.3 + 0.45 * step / 8, 0.78) for step in range(1, 9)]
    page.mouse.move(*points[0])
    page.mouse.down()
    for point in points[1:]:
        page.mouse.move(*point, steps=2)
        page.wait_for_timeout(10)
    page.mouse.up()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="Run directories or model files to serve.")
    parser.add_argument("-o", "--output", type=Path, default=Path("docs/serve.png"))
    parser.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser"))
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    process, url = start_server(args.runs)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=args.chromium, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1180, "height": 640}, device_scale_factor=1)
            page.goto(url)
            page.wait_for_selector("article.model")
            draw_two(page)
            page.wait_for_function("document.body.dataset.idle === 'true' && document.body.dataset.state === 'shown'")
            args.output.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.output), full_page=True)
            browser.close()
    finally:
        process.terminate()
        process.wait(timeout=30)
    print(args.output)


if __name__ == "__main__":
    main()
