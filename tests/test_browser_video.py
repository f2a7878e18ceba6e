"""In real headless Chromium (Debian's, as tests/test_browser.py drives it): the annotated video
of `emolens video` plays in a page's <video> element, and the web page draws each emotion in
the colour annotated images and videos use."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from pathlib import Path

import pytest

from emolens.labels import EMOTIONS
from test_browser import CHROMEDRIVER, CHROMIUM, browser, screenshot, server, wait_for  # noqa: F401 (fixtures)

pytest.importorskip("av")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="Chromium and its driver are not installed (apt-get install chromium chromium-driver, or .ci/install-browser.sh)",
)

PAGE = """<!doctype html><meta charset="utf-8"><title>annotated video</title><link rel="icon" href="data:,">
<video id="v" src="{name}" muted autoplay playsinline controls width="640"></video>"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest's output clean
        pass


@pytest.fixture
def static_site(tmp_path):
    """A folder served on a free loopback port by Python's own HTTP server."""
    handler = functools.partial(_Quiet, directory=str(tmp_path))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield tmp_path, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        thread.join(10)


def test_annotated_video_plays_in_chromium(static_site, browser, tmp_path_factory):  # noqa: F811
    import torch

    from emolens.models import ModelConfig, build_model, save_model
    from emolens.pipeline import EmotionRecognizer, process_video
    from emolens.pipeline.samples import make_video

    folder, url = static_site
    torch.manual_seed(0)
    model = save_model(build_model(ModelConfig(arch="simple_cnn")), tmp_path_factory.mktemp("m") / "m.safetensors")
    clip = make_video(tmp_path_factory.mktemp("clip") / "clip.mp4", faces=1, frames=60)
    result = process_video(clip.path, EmotionRecognizer(model, backend="torch", threads=1), output=folder, progress=False, plot=False)
    name = result.outputs["video"].name
    (folder / "index.html").write_text(PAGE.format(name=name))
    browser.get(f"{url}/index.html")
    # HAVE_ENOUGH_DATA, the picture decoded at its size, and the clock running: it plays.
    wait_for(browser, "const v = document.getElementById('v'); return v.readyState >= 3 && v.videoWidth > 0;", timeout=30)
    state = browser.execute_script(
        "const v = document.getElementById('v'); return {w: v.videoWidth, h: v.videoHeight, error: v.error && v.error.code, d: v.duration};"
    )
    assert state["w"] == 640 and state["h"] == 480 and state["error"] is None
    assert state["d"] == pytest.approx(2.0, abs=0.1)  # 60 frames at 30 frames/s
    start = browser.execute_script("return document.getElementById('v').currentTime")
    wait_for(browser, f"return document.getElementById('v').currentTime > {start} + 0.5", timeout=30)
    screenshot(browser, Path(folder), "annotated-video.png")
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
    # The same test fails on what OpenCV's wheels write (mp4v, the old output): the check is real.
    shutil.copy(clip.path, folder / "mp4v.mp4")
    (folder / "mp4v.html").write_text(PAGE.format(name="mp4v.mp4"))
    browser.get(f"{url}/mp4v.html")
    wait_for(browser, "const v = document.getElementById('v'); return v.error !== null || v.readyState >= 3;", timeout=30)
    assert browser.execute_script("const v = document.getElementById('v'); return v.error && v.error.code") == 4  # MEDIA_ERR_SRC_NOT_SUPPORTED


def test_page_draws_emotions_in_the_shared_colours(server, browser):  # noqa: F811
    from emolens.pipeline.colors import colors_for

    browser.get(server + "/")
    wait_for(browser, "return document.body.dataset.state === 'ready'")
    shown = browser.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('#legend span')]"
        ".map(s => [s.textContent, s.style.getPropertyValue('--swatch')]));"
    )
    assert shown == colors_for(EMOTIONS)
