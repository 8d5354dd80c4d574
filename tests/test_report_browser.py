"""The report as a reader sees it: rendered by headless Chromium, every plot decoded and laid out.

Chromium runs as a plain command (no WebDriver): a copy of the report gets a small script that, once the page
has loaded, writes what it found about every image into the DOM, and ``--dump-dom`` prints that DOM.
Without Chromium the test is skipped, except under CI (env CI set), where it fails: CI must run it.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from sparta.experiments.simulation import simulate, simulation_config
from sparta.report.html import write_report
from sparta.rundir import write_json

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--window-size=1280,2000",
    "--virtual-time-budget=10000",
)
PROBE = """
<script>
window.addEventListener("load", function () {
  var images = Array.prototype.map.call(document.images, function (img) {
    var box = img.getBoundingClientRect();
    return {id: img.id, complete: img.complete, natural: [img.naturalWidth, img.naturalHeight],
            shown: [box.width, box.height]};
  });
  var out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify({images: images, sections: document.querySelectorAll("section").length});
  document.body.appendChild(out);
});
</script>
"""


def chromium() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    message = "Chromium is not installed (Debian: apt-get install -y chromium chromium-driver)"
    if os.environ.get("CI"):
        pytest.fail(message + "; CI must run the browser test")
    pytest.skip(message)


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the PNG header (IHDR), to compare with what the browser decoded."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def render(browser: str, page: Path, profile: Path) -> dict:
    result = subprocess.run(
        [browser, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=180,
    )
    found = re.search(r'<pre id="probe">(.*?)</pre>', result.stdout, re.S)
    assert found, f"Chromium printed no probe (exit {result.returncode}); stderr:\n{result.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


def test_every_plot_loads_in_a_browser(tmp_path):
    browser = chromium()
    run = tmp_path / "run"
    simulate(simulation_config(4, 3, 30, seed=0), run)
    scores = [
        {"member": f"m{k:02d}", "round": r, "task": "gsm8k", "score": 0.1 * k + 0.02 * r, "n": 10}
        for k in range(1, 5)
        for r in (0, 3)
    ]
    write_json(run / "eval.json", {"rounds": [0, 3], "tasks": ["gsm8k"], "scores": scores})
    report = write_report(run)
    page = tmp_path / "probe.html"
    page.write_text(report.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")

    probe = render(browser, page, tmp_path / "profile")

    assert probe["sections"] == 8
    images = {img["id"]: img for img in probe["images"]}
    assert set(images) == {"plot-ratings", "plot-eval", "plot-win_matrix", "plot-judges"}
    for name, img in images.items():
        expected = png_size((run / f"{name.removeprefix('plot-')}.png").read_bytes())
        assert img["complete"] and img["natural"][0] > 0, f"{name} did not load: {img}"
        assert tuple(img["natural"]) == expected, f"{name} decoded as {img['natural']}, the PNG is {expected}"
        assert img["shown"][0] > 100 and img["shown"][1] > 100, f"{name} is not laid out visibly: {img}"
