"""The Python API as a user meets it, with the shipped default model on real photos
(scikit-image's astronaut, and the group photo built from it): `from emolens import ...`,
BGR numpy arrays, predict over lists / folders / globs / generators, error results, the one
table layout, plot() for matplotlib, show(), and save() twice.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import time
import types

import numpy as np
import pytest

from emolens.errors import ConfigError, DataError
from emolens.models import default_model_path

pytest.importorskip("skimage")
cv2 = pytest.importorskip("cv2")
pytestmark = pytest.mark.skipif(not default_model_path().exists(), reason=f"the shipped model is not installed ({default_model_path()})")

from PIL import Image  # noqa: E402

from emolens.pipeline import EmotionRecognizer, ImageResult, predict_images  # noqa: E402
from emolens.pipeline.colors import bgr_of  # noqa: E402
from emolens.pipeline.results import table_columns  # noqa: E402
from emolens.pipeline.samples import astronaut, group_photo  # noqa: E402


@pytest.fixture(scope="module")
def rec() -> EmotionRecognizer:
    return EmotionRecognizer()  # the shipped model with the PIPELINE defaults


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A folder as a user has one: two photos with faces, one without, one broken file."""
    root = tmp_path_factory.mktemp("photos")
    Image.fromarray(astronaut()).save(root / "astronaut.jpg", quality=95)
    cv2.imwrite(str(root / "group.png"), group_photo()[0])
    cv2.imwrite(str(root / "wall.png"), np.full((240, 320, 3), (200, 180, 160), np.uint8))
    (root / "broken.jpg").write_bytes(b"\xff\xd8 not really a JPEG")
    return root


def _scores(result: ImageResult) -> np.ndarray:
    return np.array([list(f.scores.values()) for f in result])


def _in_a_fresh_interpreter(code: str) -> None:
    """Run `code` in a new Python, where nothing is imported yet; it must exit 0."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_import_from_the_package_is_lazy():
    code = (
        "import sys, emolens\n"
        "assert not {'torch', 'cv2', 'emolens.pipeline.recognizer'} & set(sys.modules), sorted(sys.modules)\n"
        "from emolens import EmotionRecognizer\n"
        "import emolens.pipeline.recognizer as r\n"
        "assert EmotionRecognizer is r.EmotionRecognizer and 'EmotionRecognizer' in dir(emolens)\n"
    )
    _in_a_fresh_interpreter(code)


def test_model_configs_and_the_registry_load_lazily():
    # What a model file says about itself is read without torch; the registry still lists every
    # built-in architecture when it is first asked.
    code = (
        "import sys, emolens.models.config, emolens.export.metadata, emolens.models\n"
        "assert 'torch' not in sys.modules, 'reading model configs imported torch'\n"
        "from emolens.models.registry import list_models, register_model\n"
        "from emolens.errors import ModelError\n"
        "def vgg_fer(**kwargs): ...  # a user's name clashing with a built-in one\n"
        "try:\n"
        "    register_model(vgg_fer)\n"
        "    raise SystemExit('a clash with a built-in architecture was accepted')\n"
        "except ModelError as exc:\n"
        "    assert 'registered twice' in str(exc)\n"
        "assert {'simple_cnn', 'resnet_fer', 'vgg_fer', 'vgg_fer_small'} <= set(list_models()), list_models()\n"
        "from emolens.models import ModelConfig, build_model\n"
        "assert build_model(ModelConfig(arch='simple_cnn')).emolens_config.arch == 'simple_cnn'\n"
    )
    _in_a_fresh_interpreter(code)


def test_the_cli_imports_no_torch_for_help():
    # `emolens --help` and option parsing stay fast: the CLI's option lists must not pull torch in.
    code = "import sys, emolens.cli\nassert 'torch' not in sys.modules, 'emolens.cli imported torch'\n"
    _in_a_fresh_interpreter(code)


def test_numpy_arrays_are_bgr_like_opencv(rec, photos):
    path = photos / "group.png"
    from_file = rec.predict(path)
    assert len(from_file) == 4
    bgr = cv2.imread(str(path))  # what OpenCV, fer, DeepFace and Ultralytics users hold
    rgb = np.asarray(Image.open(path).convert("RGB"))
    same = [rec.predict(bgr), rec.predict(bgr, color_order="bgr"), rec.predict(rgb, color_order="rgb"), rec.predict(Image.open(path))]
    for result in same:
        assert [f.box for f in result] == [f.box for f in from_file]
        np.testing.assert_allclose(_scores(result), _scores(from_file), atol=1e-5)
    # The guess matters: the same pixels read in the other order are another gray image.
    swapped = rec.predict(rgb)
    assert [f.box for f in swapped] != [f.box for f in from_file] or np.abs(_scores(swapped) - _scores(from_file)).max() > 1e-3
    for wrong in ("RGB", "gbr", None):
        with pytest.raises(ConfigError, match=r"color_order must be 'bgr'.*or 'rgb'"):
            rec.predict(bgr, color_order=wrong)


def test_predict_over_a_folder_a_glob_a_list_and_a_generator(rec, photos):
    with pytest.warns(UserWarning, match=r"broken\.jpg: not a readable image"):
        results = rec.predict(photos)
    assert [r.name for r in results] == ["astronaut.jpg", "broken.jpg", "group.png", "wall.png"]
    assert [len(r) for r in results] == [1, 0, 4, 0]
    broken = results[1]
    assert not broken.ok and "broken.jpg" in broken.error and broken.summary() == [] and "error" in repr(broken)
    assert results[0][0].label == "happy"
    assert all(r.ok for r in results if r.name != "broken.jpg")

    assert [r.name for r in rec.predict(str(photos / "*.png"))] == ["group.png", "wall.png"]
    listed = rec.predict([photos / "astronaut.jpg", cv2.imread(str(photos / "group.png")), Image.open(photos / "wall.png")])
    assert [len(r) for r in listed] == [1, 4, 0] and listed[1].name == "image 1"

    stream = rec.predict_iter(photos)
    assert isinstance(stream, types.GeneratorType)  # nothing is read until asked for
    with pytest.warns(UserWarning):
        first = next(stream)
        assert first.name == "astronaut.jpg"
        assert [r.name for r in stream] == ["broken.jpg", "group.png", "wall.png"]
    (photos / "sub").mkdir(exist_ok=True)
    Image.fromarray(astronaut()).save(photos / "sub" / "again.png")
    try:
        with pytest.warns(UserWarning):
            assert "again.png" in [r.name for r in rec.predict(photos, recursive=True)]
    finally:
        shutil.rmtree(photos / "sub")


def test_a_bad_item_in_a_batch_is_an_error_result_naming_it(rec, photos):
    items = [photos / "astronaut.jpg", b"", np.zeros((10, 10, 5), np.uint8), photos / "missing.jpg", str(photos / "none*.gif")]
    with pytest.warns(UserWarning) as caught:
        results = rec.predict(items)
    assert [r.ok for r in results] == [True, False, False, False, False]
    assert "image 1" in results[1].error and "image 2" in results[2].error
    assert "missing.jpg: no such file" in results[3].error and "pattern matches no file" in results[4].error
    assert len(caught) == 4
    with pytest.raises(DataError, match="nothing to save"):
        results[1].save(photos / "x.jpg")
    with pytest.raises(DataError, match="no such file"):  # one image is still an error
        rec.predict(photos / "missing.jpg")


def test_rows_are_the_one_table_layout_derived_from_summary(rec, photos, tmp_path):
    result = rec.predict(photos / "group.png")
    rows = result.rows(file="group.png")
    assert [list(r) for r in rows] == [result.columns("file")] * 4
    assert result.columns("file") == ["file", "image", "face", "face_id", "x", "y", "w", "h", *rec.labels, "label", "score", "detection_confidence", "tilt"]
    for row, s in zip(rows, result.summary(), strict=True):
        assert {k: row[k] for k in "xywh"} == s["box"] and {k: row[k] for k in rec.labels} == s["scores"]
        assert (row["label"], row["score"], row["detection_confidence"], row["face"]) == (s["label"], s["score"], s["detection_confidence"], s["face"])
    df = result.to_df()
    assert list(df.columns) == result.columns() and df.to_dict("records") == result.rows()
    assert list(rec.predict(photos / "wall.png").to_df().columns) == result.columns()  # the same header without a face
    assert list(result[0].flat()) == table_columns(rec.labels, image=False)

    report = predict_images([photos / "group.png", photos / "astronaut.jpg"], rec, output=tmp_path, format="csv", save=False)
    import pandas as pd

    table = pd.read_csv(report.table)
    assert list(table.columns) == table_columns(rec.labels, ["path"])
    assert len(table) == 5 and table["label"].tolist() == [r["label"] for r in result.rows()] + ["happy"]


def test_one_way_to_get_a_recognizer(rec, photos, tmp_path):
    assert EmotionRecognizer.of(rec) is rec
    built = EmotionRecognizer.of(None, backend="torch", min_face_size=60, detector_threshold=0.6)
    assert built.backend.name == "torch" and built.detector.min_face_size == 60 and built.detector.threshold == 0.6
    from emolens.faces.registry import resolve_auto
    from emolens.pipeline.defaults import PIPELINE

    assert PIPELINE.detector == "auto" and PIPELINE.min_face_size is None  # the detector's own smallest face
    own_default = {"centerface": 20, "mtcnn": 20, "haar": 40}[resolve_auto()]
    assert rec.detector.name == resolve_auto() and rec.detector.min_face_size == own_default
    by_model = predict_images([photos / "astronaut.jpg"], str(default_model_path()), output=tmp_path, save=False)
    by_rec = predict_images([photos / "astronaut.jpg"], rec, output=tmp_path, save=False)
    assert by_model.rows[0]["label"] == by_rec.rows[0]["label"] == "happy"


def test_plot_is_rgb_for_matplotlib(rec, photos):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    result = rec.predict(photos / "astronaut.jpg")
    drawn = result.plot()
    np.testing.assert_array_equal(drawn, result.plot(color_order="bgr")[:, :, ::-1])
    box_rgb = np.array(bgr_of(result[0].label)[::-1])
    x, y, w, h = result[0].box
    edge = drawn[y + h - 2 : y + h + 2, x + w // 2]  # the bottom line of the face box
    assert (np.abs(edge.astype(int) - box_rgb).max(axis=1) < 30).any(), (edge, box_rgb)
    # Through matplotlib as a user would: the happy colour shows on the canvas as it is.
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = Figure(figsize=(5.12, 5.12), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(drawn)
    ax.set_axis_off()
    fig.canvas.draw()
    canvas = np.asarray(fig.canvas.buffer_rgba())[:, :, :3].astype(int)
    assert (np.abs(canvas - box_rgb).max(axis=2) < 30).sum() > 100
    with pytest.raises(ConfigError, match="color_order"):
        result.plot(color_order="BGR")


def test_show_without_a_display_says_what_to_do(rec, photos):
    import matplotlib

    matplotlib.use("Agg")
    with pytest.raises(ConfigError, match=r"(?i)backend is 'agg'.*Jupyter.*python3-tk.*result\.save"):
        rec.predict(photos / "astronaut.jpg").show()


@pytest.mark.skipif(shutil.which("Xvfb") is None, reason="Xvfb is not installed (apt-get install xvfb)")
def test_show_opens_a_window_with_the_labelled_photo(photos):
    pytest.importorskip("tkinter", reason="this Python has no tkinter (Debian: apt-get install python3-tk)")
    read, write = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
                            pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as fh:
        display = f":{fh.readline().strip()}"
    code = (
        "import sys, matplotlib.pyplot as plt\n"
        "from emolens import EmotionRecognizer\n"
        f"r = EmotionRecognizer().predict({str(photos / 'astronaut.jpg')!r})\n"
        "r.show(block=False)\n"
        "plt.pause(1.0)\n"
        "print(r[0].label, flush=True)\n"
        "plt.pause(60)\n"
    )
    env = {**os.environ, "DISPLAY": display, "MPLBACKEND": "TkAgg", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        label = proc.stdout.readline().strip()
        assert label == "happy", proc.stderr.read() if proc.poll() is not None else label
        time.sleep(0.5)
        from PIL import ImageGrab

        screen = np.asarray(ImageGrab.grab(xdisplay=display)).astype(int)
    finally:
        proc.kill()
        proc.wait(10)
        xvfb.terminate()
        xvfb.wait(10)
    # The window (no window manager: at the top left) shows the photo, with the face box drawn
    # in the happy colour: RGB as matplotlib expects it, not channel-swapped.
    assert screen[:600, :600].std() > 20
    happy_rgb = np.array(bgr_of("happy")[::-1])
    assert (np.abs(screen - happy_rgb).max(axis=2) < 30).sum() > 100
    swapped = np.array(bgr_of("happy"))
    assert (np.abs(screen - swapped).max(axis=2) < 30).sum() < 20


def test_saving_twice_keeps_both(rec, photos, tmp_path):
    result = rec.predict(photos / "astronaut.jpg")
    first = result.save(tmp_path / "labelled.jpg")
    second = result.save(tmp_path / "labelled.jpg")  # a notebook cell run again
    assert (first.name, second.name) == ("labelled.jpg", "labelled-2.jpg")
    assert cv2.imread(str(second)).shape == (512, 512, 3)
    assert result.save(tmp_path / "labelled.jpg", overwrite=True) == first
    assert result.save(tmp_path / "faces.csv").name == "faces.csv" and result.save(tmp_path / "faces.csv").name == "faces-2.csv"
    import pandas as pd

    assert list(pd.read_csv(tmp_path / "faces.csv").columns) == result.columns()
    assert Image.open(io.BytesIO(first.read_bytes())).size == (512, 512)
