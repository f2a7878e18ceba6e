"""`emolens webcam` opens a real live window on the default install (headless OpenCV: a Tk
window), proved under Xvfb with a screenshot of the X screen, a video file standing in for
the camera. Xvfb is Debian's `xvfb` package (.ci/install-browser.sh installs it); the test
skips, saying so, where it or tkinter is missing. Set EMOLENS_SCREENSHOT_DIR to keep the PNG.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

XVFB = shutil.which("Xvfb")
pytestmark = pytest.mark.skipif(XVFB is None, reason="Xvfb is not installed (apt-get install xvfb, or .ci/install-browser.sh)")
pytest.importorskip("tkinter", reason="this Python has no tkinter (Debian: apt-get install python3-tk)")
pytest.importorskip("skimage")
cv2 = pytest.importorskip("cv2")


@pytest.fixture
def display():
    """A private X server; yields its DISPLAY name (":N", the number Xvfb picked itself)."""
    read, write = os.pipe()
    proc = subprocess.Popen([XVFB, "-displayfd", str(write), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                            pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as fh:
        number = fh.readline().strip()
    assert number.isdigit(), "Xvfb did not start"
    try:
        yield f":{number}"
    finally:
        proc.terminate()
        proc.wait(10)


def grab(display_name: str) -> np.ndarray:
    from PIL import ImageGrab

    return np.asarray(ImageGrab.grab(xdisplay=display_name))  # (H, W, 3) RGB of the whole X screen


def test_webcam_command_opens_a_live_window(display, tmp_path):
    from emolens.pipeline.colors import EMOTION_COLORS
    from emolens.pipeline.samples import make_video

    if "NONE" not in cv2.getBuildInformation().split("GUI:")[1].splitlines()[0]:
        pytest.skip("this OpenCV has a GUI of its own; the test is about the headless default install")
    clip = make_video(tmp_path / "camera.mp4", faces=1, frames=150)
    env = {**os.environ, "DISPLAY": display, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "emolens", "webcam", str(clip.path), "--max-frames", "150", "--snapshot-dir", str(tmp_path)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    shot, deadline = None, time.monotonic() + 90
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            screen = grab(display)
            # No window manager: the window sits at the top left, the frame (640x480) and the
            # score panel (260 wide) beside it. Wait until the panel's dark grey is painted.
            if (np.abs(screen[200:400, 660:880].astype(int) - 30).max(axis=2) < 4).mean() > 0.5:
                time.sleep(0.5)  # a few frames later, with the labels drawn
                shot = grab(display)
                break
            time.sleep(0.1)
    finally:
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert shot is not None, f"no window appeared on the X screen; emolens said: {out} {err}"
    keep = os.environ.get("EMOLENS_SCREENSHOT_DIR")
    if keep:
        from PIL import Image

        Path(keep).mkdir(parents=True, exist_ok=True)
        Image.fromarray(shot).save(Path(keep) / "webcam-window.png")
    frame = shot[:480, :640]
    # The astronaut on the sample video's gradient, and a face box in an emotion's colour.
    assert frame.std() > 20
    colours = [tuple(int(EMOTION_COLORS[k][i : i + 2], 16) for i in (1, 3, 5)) for k in EMOTION_COLORS]
    boxed = [c for c in colours if (np.abs(frame.astype(int) - c).max(axis=2) < 8).sum() > 200]
    assert boxed, "no face box in an emotion colour in the window"
    assert "150 frames" in out
