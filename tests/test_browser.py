"""End to end in real headless Chromium: the page at / with a fake camera showing a real face.

Chromium is Debian's (`chromium` and `chromium-driver`, installed by .ci/install-browser.sh),
never a downloaded build. The fake camera plays a Y4M video made here from scikit-image's
astronaut photo. The test asserts that the page draws a face box with an emotion label over
the live video and fills the score bars, then does the same through the photo upload, and
saves a screenshot of each (set EMOLENS_SCREENSHOT_DIR to keep them).
"""

from __future__ import annotations

import os
import shutil
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from emolens.faces.base import gap, intersection
from emolens.labels import EMOTIONS
from live_server import live

selenium = pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[dev]')")
pytest.importorskip("uvicorn")
skimage_data = pytest.importorskip("skimage.data")

CHROMIUM = os.environ.get("EMOLENS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = os.environ.get("EMOLENS_CHROMEDRIVER") or shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="Chromium and its driver are not installed (apt-get install chromium chromium-driver, or .ci/install-browser.sh)",
)


def write_y4m(path: Path, rgb: np.ndarray, frames: int = 10, size: tuple[int, int] = (640, 480)) -> Path:
    """A short 4:2:0 Y4M video of `rgb` on a gray background, drifting a few pixels per frame."""
    from PIL import Image

    width, height = size
    side = height - 40
    face = Image.fromarray(rgb).resize((side, side), Image.Resampling.BILINEAR)
    canvases = []
    for i in range(frames):
        canvas = Image.new("RGB", (width, height), (90, 90, 90))
        canvas.paste(face, ((width - side) // 2 + (i % 5) * 2, 20))
        canvases.append(canvas)
    return y4m_of(path, canvases)


def y4m_of(path: Path, canvases: list) -> Path:
    """A 4:2:0 Y4M video (10 frames/s) of PIL images, for Chromium's fake camera."""
    width, height = canvases[0].size
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode())
        for canvas in canvases:
            y, cb, cr = (np.asarray(c) for c in canvas.convert("YCbCr").split())
            f.write(b"FRAME\n")
            f.write(y.tobytes())
            for chroma in (cb, cr):  # average 2x2 blocks: 4:2:0 subsampling
                sub = chroma.reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3)).round().astype(np.uint8)
                f.write(sub.tobytes())
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The real app on a free loopback port, run by uvicorn in a thread as `emolens serve` runs it."""
    import torch

    from emolens.models import ModelConfig, build_model, save_model
    from emolens.pipeline import EmotionRecognizer
    from emolens.serving import create_app

    torch.manual_seed(0)
    path = save_model(build_model(ModelConfig(arch="simple_cnn", name="test-cnn", version="0.0.1")), tmp_path_factory.mktemp("m") / "m.safetensors")
    with live(create_app(EmotionRecognizer(model=path), workers=2)) as port:
        yield f"http://127.0.0.1:{port}"


def chromium(tmp: Path, video: Path):
    """Headless Chromium whose fake camera plays `video`."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1280,900",
        f"--user-data-dir={tmp / 'profile'}",
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={video}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path keeps Selenium Manager from looking for (and downloading) one.
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)  # generous: the CI machine may be busy; a normal run takes seconds
    return driver


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("chromium")
    driver = chromium(tmp, write_y4m(tmp / "face.y4m", skimage_data.astronaut()))
    yield driver
    driver.quit()


def wait_for(driver, script: str, timeout: float = 60.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: d.execute_script(script))


def screenshot(driver, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    driver.save_screenshot(str(path))
    keep = os.environ.get("EMOLENS_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / name)
    return path


def painted_pixels(driver) -> int:
    return driver.execute_script(
        "const c = document.getElementById('overlay');"
        "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n;"
    )


def faces_listed(driver) -> list[dict]:
    return driver.execute_script(
        "return [...document.querySelectorAll('#faces li')].map(li => ({label: li.dataset.label, box: li.dataset.box}));"
    )


def check_face(driver, width: int, height: int) -> dict:
    faces = faces_listed(driver)
    assert len(faces) == 1, faces
    face = faces[0]
    assert face["label"] in EMOTIONS
    x, y, w, h = map(int, face["box"].split(","))
    assert w > 40 and h > 40
    assert 0 <= x <= x + w <= width and 0 <= y <= y + h <= height
    assert painted_pixels(driver) > 4 * (w + h)  # the box outline and its label tag were drawn
    bar = driver.execute_script(f"return document.getElementById('value-{face['label']}').textContent")
    assert bar.endswith("%"), bar
    return face


def test_webcam_page_shows_face_box_and_label(server, browser, tmp_path):
    browser.get(server + "/")
    wait_for(browser, "return document.body.dataset.state === 'ready'")
    header = browser.find_element("id", "model").text
    assert "test-cnn" in header and "faces found by " in header, header  # which detector: the server's own
    browser.find_element("id", "start").click()
    wait_for(browser, "return document.querySelectorAll('#faces li').length > 0")
    check_face(browser, 640, 480)
    # Several frames go round the WebSocket, one at a time, and the timeline fills.
    wait_for(browser, "return Number(document.body.dataset.frames) >= 3")
    assert "fps" in browser.find_element("id", "rate").text
    assert browser.find_element("id", "timeline-panel").is_displayed()
    check_face(browser, 640, 480)
    screenshot(browser, tmp_path, "webcam.png")
    browser.find_element("id", "stop").click()
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors  # no script errors, no CSP violations, no failed requests


def upload_photo(browser, server: str, photo: Path) -> None:
    """Open the page, switch to photo mode, choose `photo` and wait for the answer."""
    browser.get(server + "/")
    wait_for(browser, "return document.body.dataset.state === 'ready'")
    browser.find_element("id", "tab-photo").click()
    browser.find_element("id", "file").send_keys(str(photo))
    wait_for(browser, "return document.body.dataset.state === 'photo'")


def test_photo_upload_mode(server, browser, tmp_path):
    from PIL import Image

    photo = tmp_path / "astronaut.jpg"
    Image.fromarray(skimage_data.astronaut()).save(photo, quality=92)
    upload_photo(browser, server, photo)
    check_face(browser, 512, 512)
    assert "1 face in" in browser.find_element("id", "message").text
    assert not browser.find_element("id", "timeline-panel").is_displayed()  # a photo has no timeline
    screenshot(browser, tmp_path, "photo.png")
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors


WIDER = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "widerface-val5"


@pytest.mark.skipif(not (WIDER / "widerface-val5.zip").is_file(), reason=f"WIDER FACE subset not found at {WIDER}")
def test_labels_of_a_group_photo_cover_no_face_and_no_label(server, browser, tmp_path):
    """A real group photo (12 people in a row): the page draws each label where the server placed
    it (`tags`, as annotated images place them), beside its own face, over no other face or label.
    The page's own rule before (every label above its box, its font a 32nd of the photo's width)
    laid them over each other and over the faces above."""
    import zipfile

    photo = tmp_path / "group.jpg"
    with zipfile.ZipFile(WIDER / "widerface-val5.zip") as zf:
        photo.write_bytes(zf.read("WIDER_val/images/20--Family_Group/20_Family_Group_Family_Group_20_22.jpg"))
    upload_photo(browser, server, photo)
    listed = browser.execute_script("return [...document.querySelectorAll('#faces li')].map(li => [li.dataset.box, li.dataset.tag]);")
    faces = [tuple(map(int, box.split(","))) for box, _ in listed]
    tags = [tuple(map(int, tag.split(","))) for _, tag in listed]
    assert len(faces) >= 10, faces
    for i, (face, tag) in enumerate(zip(faces, tags, strict=True)):
        assert gap(tag, face) <= 1, (face, tag)  # touching its own face
        assert not [f for j, f in enumerate(faces) if j != i and intersection(tag, f) > 0], (i, tag)
        assert not [t for j, t in enumerate(tags) if j != i and intersection(tag, t) > 0], (i, tag)
    screenshot(browser, tmp_path, "group.png")
    assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]


@pytest.mark.skipif(not (WIDER / "widerface-val5.zip").is_file(), reason=f"WIDER FACE subset not found at {WIDER}")
def test_any_face_of_a_photo_shows_its_scores_on_a_click(server, browser, tmp_path):
    """A group photo: the bars show the largest face first; a click on another face's box (mapped
    through the scaled picture), or Enter on its line in the list, shows that face's scores."""
    import zipfile

    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    photo = tmp_path / "group.jpg"
    with zipfile.ZipFile(WIDER / "widerface-val5.zip") as zf:
        photo.write_bytes(zf.read("WIDER_val/images/20--Family_Group/20_Family_Group_Family_Group_20_1003.jpg"))
    upload_photo(browser, server, photo)

    def shown() -> tuple[str, dict[str, str]]:
        return tuple(browser.execute_script(
            "return [document.getElementById('bars-who').textContent,"
            " Object.fromEntries(state.labels.map(l => [l, document.getElementById('value-' + l).textContent]))];"
        ))

    def scores_of(k: int) -> dict[str, str]:
        return browser.execute_script(f"const f = state.photoResult.faces[{k}]; return Object.fromEntries(state.labels.map(l => [l, Math.round(f.scores[l] * 100) + '%']));")

    items = browser.find_elements("css selector", "#faces li")
    assert len(items) >= 3
    assert shown() == ("(largest face)", scores_of(0))
    box = tuple(map(int, items[2].get_attribute("data-box").split(",")))
    overlay = browser.find_element("id", "overlay")
    width, height, shown_w, shown_h = browser.execute_script(
        "const o = document.getElementById('overlay'); const r = o.getBoundingClientRect(); return [o.width, o.height, r.width, r.height];"
    )
    scale = min(shown_w / width, shown_h / height)
    dx = (box[0] + box[2] / 2 - width / 2) * scale  # from the overlay's centre, where Selenium's offsets start
    dy = (box[1] + box[3] / 2 - height / 2) * scale
    ActionChains(browser).move_to_element_with_offset(overlay, round(dx), round(dy)).click().perform()
    assert shown() == ("(face 3)", scores_of(2))
    items = browser.find_elements("css selector", "#faces li")
    browser.execute_script("arguments[0].focus();", items[1])  # as Tab would reach it
    ActionChains(browser).send_keys(Keys.ENTER).perform()
    assert shown() == ("(face 2)", scores_of(1))
    assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def camera_frames(
    driver, server: str, count: int, *, start: bool = True, stop: bool = True,
) -> list[tuple[list[tuple[int, ...]], tuple[int, ...] | None, str]]:
    """Open the page and start its (fake) camera (unless `start` is False: it runs already), and
    read the next `count` answered frames: each one's face boxes, the box of the face whose bars
    are shown (`data-main-box`) and the bars' heading, all read by one script, so from the same
    frame; then stop the camera, unless `stop` is False."""
    if start:
        driver.get(server + "/")
        wait_for(driver, "return document.body.dataset.state === 'ready'")
        driver.find_element("id", "start").click()
    frames: list = []
    seen = 0 if start else int(driver.execute_script("return Number(document.body.dataset.frames || 0)"))
    end = seen + count
    while seen < end:
        wait_for(driver, f"return Number(document.body.dataset.frames) > {seen}")
        seen, boxes, main, who = driver.execute_script(
            "return [Number(document.body.dataset.frames), [...document.querySelectorAll('#faces li')].map(li => li.dataset.box),"
            " document.body.dataset.mainBox || null, document.getElementById('bars-who').textContent];"
        )
        frames.append(([tuple(map(int, box.split(","))) for box in boxes], tuple(map(int, main.split(","))) if main else None, who))
    if stop:
        driver.find_element("id", "stop").click()
        assert not [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    return frames


def _on_left(box: tuple[int, ...]) -> bool:
    return box[0] < 320


def test_two_people_of_one_size_keep_the_bars_on_one_of_them(server, tmp_path):
    """A camera on two people of about one size, each the larger in turn every half second (by 14%
    of the area): the page keeps the bars and timeline on one of them (the server's choice, by
    `main_face_switch`, as in videos) and draws that face's box thicker."""
    from PIL import Image

    head = Image.fromarray(skimage_data.astronaut()[30:230, 140:320])
    canvases = []
    for i in range(20):
        canvas = Image.new("RGB", (640, 480), (90, 90, 90))
        small, large = (head.resize((s * 180 // 200, s)) for s in (200, 214))
        left, right = (large, small) if (i // 5) % 2 else (small, large)
        canvas.paste(left, (40, 120))
        canvas.paste(right.transpose(Image.Transpose.FLIP_LEFT_RIGHT), (400, 120))
        canvases.append(canvas)
    driver = chromium(tmp_path, y4m_of(tmp_path / "two.y4m", canvases))
    try:
        both = [(faces, main) for faces, main, _ in camera_frames(driver, server, 16) if len(faces) == 2 and main]
    finally:
        driver.quit()
    largest_sides = [_on_left(max(faces, key=lambda b: b[2] * b[3])) for faces, _ in both]
    main_sides = [_on_left(main) for _, main in both]
    changes = [sum(a != b for a, b in pairwise(sides)) for sides in (largest_sides, main_sides)]
    assert changes[0] >= 2, largest_sides  # the premise: each was the larger in turn
    assert changes[1] == 0, main_sides  # one person's bars


def click_frame_point(driver, frame_x: float, frame_y: float) -> None:
    """Click the live view where the frame's pixel (x, y) is shown: the overlay has the frame's
    pixels, scaled to fit (`object-fit: contain`) and mirrored while *mirror* is ticked."""
    from selenium.webdriver.common.action_chains import ActionChains

    overlay = driver.find_element("id", "overlay")
    width, height, shown_w, shown_h, mirrored = driver.execute_script(
        "const o = document.getElementById('overlay'); const r = o.getBoundingClientRect();"
        " return [o.width, o.height, r.width, r.height, document.getElementById('mirror').checked];"
    )
    scale = min(shown_w / width, shown_h / height)
    x = width - frame_x if mirrored else frame_x
    ActionChains(driver).move_to_element_with_offset(overlay, round((x - width / 2) * scale), round((frame_y - height / 2) * scale)).click().perform()


def test_a_click_on_a_face_keeps_the_live_bars_on_it(server, tmp_path):
    """Two people, the left one much larger: the bars show it by the rule. A click on the other
    (through the mirrored view) keeps them on that one, frame after frame; a second click gives
    them back to the larger."""
    from PIL import Image

    head = Image.fromarray(skimage_data.astronaut()[30:230, 140:320])
    canvas = Image.new("RGB", (640, 480), (90, 90, 90))
    canvas.paste(head.resize((216, 240)), (30, 100))
    canvas.paste(head.resize((135, 150)).transpose(Image.Transpose.FLIP_LEFT_RIGHT), (430, 130))
    driver = chromium(tmp_path, y4m_of(tmp_path / "pair.y4m", [canvas] * 10))
    try:
        frames = camera_frames(driver, server, 4, stop=False)
        faces = frames[-1][0]
        assert len(faces) == 2 and frames[-1][1][0] < 320, frames[-1]  # the larger, on the left, by the rule
        right = max(faces, key=lambda b: b[0])
        click_frame_point(driver, right[0] + right[2] / 2, right[1] + right[3] / 2)
        wait_for(driver, "return document.getElementById('bars-who').textContent.includes('you chose')", timeout=30)
        chosen = camera_frames(driver, server, 6, start=False, stop=False)
        assert all(main is not None and main[0] > 320 for _, main, _ in chosen), chosen
        click_frame_point(driver, right[0] + right[2] / 2, right[1] + right[3] / 2)
        wait_for(driver, "return document.getElementById('bars-who').textContent.includes('largest')", timeout=30)
        back = camera_frames(driver, server, 3, start=False)
        assert all(main is not None and main[0] < 320 for _, main, _ in back), back
    finally:
        driver.quit()


def test_a_face_missed_for_a_moment_keeps_the_live_bars(server, tmp_path):
    """Two people of one size, each missing from the camera for 0.8 s in turn: the page keeps the
    bars on the one the server chose (`main` of each answer; `PIPELINE.main_face_hold`), with its
    last scores while it is missed, where moving them to the face in view would hand them over at
    every miss."""
    from PIL import Image

    head = Image.fromarray(skimage_data.astronaut()[30:230, 140:320]).resize((180, 200))
    canvases = []
    for i in range(30):  # 3 s at 10 frames/s: the left face gone at 0.5-1.3 s, the right at 2.0-2.8 s
        canvas = Image.new("RGB", (640, 480), (90, 90, 90))
        if not 5 <= i < 13:  # 8 frames: seen by the page however slowly a busy machine answers
            canvas.paste(head, (40, 120))
        if not 20 <= i < 28:
            canvas.paste(head.transpose(Image.Transpose.FLIP_LEFT_RIGHT), (400, 120))
        canvases.append(canvas)
    driver = chromium(tmp_path, y4m_of(tmp_path / "blink.y4m", canvases))
    try:
        frames = camera_frames(driver, server, 60)  # over 5 s: both misses at least once
    finally:
        driver.quit()
    sides = [{_on_left(box) for box in faces} for faces, _, _ in frames]
    assert any(len(s) == 1 for s in sides) and any(len(s) == 2 for s in sides), sides  # the premise: misses were seen
    assert any("out of view" in who for _, _, who in frames), "the bars never showed the missed face's last scores"
    main_sides = [_on_left(main) for _, main, _ in frames if main]
    assert sum(a != b for a, b in pairwise(main_sides)) == 0, (main_sides, sides)


def test_a_photo_the_browser_cannot_open_is_read_by_the_server(server, browser, tmp_path):
    """An iPhone's HEIC: Chromium cannot decode it, so the page sends the file as it is and the
    server (with the heif extra) reads it; the faces are drawn on a blank picture of its size."""
    pillow_heif = pytest.importorskip("pillow_heif", reason="pillow-heif (the heif extra) is not installed")
    from PIL import Image

    pillow_heif.register_heif_opener()
    photo = tmp_path / "IMG_0001.HEIC"
    Image.fromarray(skimage_data.astronaut()).save(photo, "HEIF", quality=90)
    upload_photo(browser, server, photo)
    check_face(browser, 512, 512)
    assert "1 face (this browser cannot show the photo; the server read it)" in browser.find_element("id", "message").text
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
