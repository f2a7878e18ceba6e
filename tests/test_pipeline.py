"""EmotionRecognizer, results objects and `emolens predict`, on real faces from scikit-image.

Plumbing runs on a randomly initialised real model saved to a temp folder; what needs a
trained model (the smiling astronaut reads as happy) uses the shipped default and is skipped
while it is not installed.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from emolens.errors import DataError
from emolens.labels import EMOTIONS

pytest.importorskip("skimage")
cv2 = pytest.importorskip("cv2")

from emolens.cli import main  # noqa: E402
from emolens.faces import iou  # noqa: E402
from emolens.pipeline import EmotionRecognizer, FaceResult, ImageResult, predict_images  # noqa: E402
from emolens.pipeline.samples import astronaut, group_photo  # noqa: E402
from emolens.preprocessing import crop_face, prepare_face, to_gray  # noqa: E402

ASTRONAUT_FACE = (177, 66, 95, 95)


def _peaked_model(arch: str = "simple_cnn", seed: int = 0):
    """A random model whose last layer is scaled up, so its scores differ between faces."""
    import torch

    from emolens.models import ModelConfig, build_model

    torch.manual_seed(seed)
    model = build_model(ModelConfig(arch=arch, name=f"random-{arch}", version="0"))
    with torch.no_grad():
        model.head[-1].weight.mul_(40.0)
    return model.eval()


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    from emolens.models import save_model

    return save_model(_peaked_model(), tmp_path_factory.mktemp("model") / "random.safetensors")


@pytest.fixture(scope="module")
def rec(model_path) -> EmotionRecognizer:
    return EmotionRecognizer(model_path)


@pytest.fixture(scope="module")
def photo_rgb() -> np.ndarray:
    return astronaut()


def test_predict_finds_the_face_and_returns_scores(rec, photo_rgb):
    result = rec.predict(photo_rgb, color_order="rgb")
    assert isinstance(result, ImageResult) and len(result) == 1
    face = result[0]
    assert iou(face.box, ASTRONAUT_FACE) > 0.7
    assert list(face.scores) == list(EMOTIONS)
    assert sum(face.scores.values()) == pytest.approx(1.0, abs=1e-5)
    assert face.label == max(face.scores, key=face.scores.get)
    assert 0 < face.detection_confidence <= 1 and face.face_id is None
    assert set(result.speed) == {"preprocess", "detect", "classify"}


def test_crops_use_the_models_geometry(rec, photo_rgb):
    # The recognizer's crop is exactly preprocessing.crop_face with the model's margin and size.
    p = rec.config.preprocess
    gray = to_gray(photo_rgb)
    expected = crop_face(gray, ASTRONAUT_FACE, p.face_margin, p.image_size)
    np.testing.assert_array_equal(rec.crop(gray, [ASTRONAUT_FACE])[0], expected)
    face = rec.predict(photo_rgb, color_order="rgb")[0]
    (det,) = rec.detector.detect(np.ascontiguousarray(photo_rgb[:, :, ::-1]), gray)  # its eyes turn the crop upright
    assert det.box == face.box
    direct = rec.classify(rec.crop(gray, [det]))[0]
    np.testing.assert_allclose([face.scores[k] for k in EMOTIONS], direct, atol=1e-6)


def test_every_input_form_gives_the_same_answer(rec, photo_rgb, tmp_path):
    from PIL import Image

    ref = rec.predict(photo_rgb, color_order="rgb")[0]
    path = tmp_path / "astronaut.png"
    Image.fromarray(photo_rgb).save(path)
    bgr = np.ascontiguousarray(photo_rgb[:, :, ::-1])
    rgba = np.dstack([photo_rgb, np.full(photo_rgb.shape[:2], 255, np.uint8)])
    inputs = {
        "path": (path, {}), "str": (str(path), {}), "bytes": (path.read_bytes(), {}), "pil": (Image.fromarray(photo_rgb), {}),
        "bgr (the default)": (bgr, {}), "bgr": (bgr, {"color_order": "bgr"}), "cv2.imread": (cv2.imread(str(path)), {}),
        "rgb": (photo_rgb, {"color_order": "rgb"}), "rgba": (rgba, {"color_order": "rgb"}),
        "float": (photo_rgb / 255.0, {"color_order": "rgb"}), "uint16": (photo_rgb.astype(np.uint16) * 257, {"color_order": "rgb"}),
    }
    for name, (image, kw) in inputs.items():
        result = rec.predict(image, **kw)
        assert len(result) == 1, name
        assert result[0].box == ref.box, name
        np.testing.assert_allclose(list(result[0].scores.values()), list(ref.scores.values()), atol=1e-5, err_msg=name)
        assert result.orig_img.shape == (512, 512, 3) and result.orig_img.dtype == np.uint8
    np.testing.assert_array_equal(rec.predict(path).orig_img, bgr)  # results keep the image in BGR
    assert rec.predict(path).name == "astronaut.png"
    gray = rec.predict(to_gray(photo_rgb))  # gray, any size: boxes land on the face too
    assert len(gray) == 1 and iou(gray[0].box, ASTRONAUT_FACE) > 0.7


def test_many_faces_one_batch(rec):
    img, truth = group_photo()
    result = rec.predict(img)  # BGR, the default for arrays
    assert len(result) == 4
    for box in truth:
        assert max(iou(box, f.box) for f in result) > 0.6


def test_no_face_is_an_empty_result_not_an_error(rec):
    result = rec.predict(np.full((200, 300, 3), 128, np.uint8))
    assert len(result) == 0 and result.summary() == []
    assert list(result.to_df().columns)[:3] == ["image", "face", "face_id"]
    assert result.plot().shape == (200, 300, 3)


def test_bad_inputs_raise_clear_errors(rec, tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"this is not an image")
    with pytest.raises(DataError, match=r"empty.jpg: empty file \(0 bytes\)"):
        rec.predict(empty)
    with pytest.raises(DataError, match=r"junk\.jpg: not a readable image"):
        rec.predict(junk)
    with pytest.raises(DataError, match="no such file"):
        rec.predict(tmp_path / "missing.png")
    with pytest.raises(DataError, match="expected an image path"):
        rec.predict(12345)
    with pytest.raises(DataError, match="crop 1"):
        rec.predict_crops([np.zeros((48, 48), np.uint8), b""])


def test_results_export_summary_df_json_csv_and_plot(rec, photo_rgb, tmp_path):
    result = rec.predict(photo_rgb, color_order="rgb", name="astro")
    rows = result.summary()
    assert rows[0]["image"] == "astro" and rows[0]["face"] == 0
    assert set(rows[0]) == {"image", "face", "face_id", "box", "label", "score", "scores", "detection_confidence", "tilt", "landmarks"}
    assert rows[0]["box"] == dict(zip("xywh", result[0].box, strict=True))
    json.dumps(rows)  # JSON-ready as it is, for the HTTP API
    df = result.to_df()
    assert list(df.columns) == ["image", "face", "face_id", "x", "y", "w", "h", *EMOTIONS, "label", "score", "detection_confidence", "tilt"]
    assert df.loc[0, "label"] == result[0].label
    doc = json.loads(result.to_json())
    assert doc["faces"] == rows and doc["width"] == 512 and doc["model"] == "random-simple_cnn"
    import pandas as pd

    assert pd.read_csv(io.StringIO(result.to_csv())).shape == (1, 11 + len(EMOTIONS))
    drawn = result.plot(color_order="bgr")
    assert drawn.shape == result.orig_img.shape and drawn.dtype == np.uint8
    np.testing.assert_array_equal(result.plot(), drawn[:, :, ::-1])  # plot() itself is RGB, for matplotlib
    x, y, w, h = result[0].box
    assert not np.array_equal(drawn[y : y + h, x : x + w], result.orig_img[y : y + h, x : x + w])  # the box is drawn
    assert not np.array_equal(drawn, result.orig_img)
    assert np.array_equal(result.orig_img, photo_rgb[:, :, ::-1])  # plot() drew on a copy


def test_save_never_overwrites_unless_asked(rec, photo_rgb, tmp_path):
    # Saving again takes the next free name (a-2.jpg), as every emolens output does: a notebook
    # cell run twice keeps both files and raises nothing. (It raised ConfigError before.)
    result = rec.predict(photo_rgb, color_order="rgb")
    out = result.save(tmp_path / "a.jpg")
    assert out == tmp_path / "a.jpg" and cv2.imread(str(out)).shape == (512, 512, 3)
    first = out.read_bytes()
    assert result.save(out) == tmp_path / "a-2.jpg" and out.read_bytes() == first
    assert result.save(out, overwrite=True) == out
    assert json.loads(result.save(tmp_path / "a.json").read_text())["faces"][0]["label"] == result[0].label
    assert "angry" in result.save(tmp_path / "a.csv").read_text().splitlines()[0]


def test_predict_crops_batches_already_cropped_faces(rec):
    from skimage import data

    lfw = data.lfw_subset()[:8]  # (N, 25, 25) float faces in [0, 1]
    faces = rec.predict_crops(list(lfw), reframe=False)  # as they come
    assert len(faces) == 8 and all(isinstance(f, FaceResult) for f in faces)
    assert faces[0].box == (0, 0, 25, 25) and faces[0].detection_confidence is None
    p = rec.config.preprocess
    expected = rec.classify(np.stack([prepare_face(x, p) for x in lfw]))
    np.testing.assert_allclose([[f.scores[k] for k in EMOTIONS] for f in faces], expected, atol=1e-6)
    assert len({f.label for f in faces}) > 1  # the scaled random model tells faces apart
    assert rec.predict_crops([]) == []
    # Reframed (the default), the 25-px faces are searched enlarged, and found.
    found = rec.predict_crops(list(lfw))
    assert sum(f.detection_confidence is not None for f in found) >= 6 and found[0].box == (0, 0, 25, 25)


def test_predict_crops_finds_each_face_again_and_cuts_it_as_photos_faces(rec, photo_rgb):
    """reframe (the default): a crop twice as loose as the face is read as the face cut from the
    photo is; a crop with no face in it is read as it comes."""
    x, y, w, h = ASTRONAUT_FACE
    loose = np.ascontiguousarray(photo_rgb[max(0, y - h // 2) : y + h + h // 2, x - w // 2 : x + w + w // 2])
    wall = np.full((90, 90, 3), 128, np.uint8)
    face, blank = rec.predict_crops([loose, wall], color_order="rgb")
    assert face.box == (0, 0, loose.shape[1], loose.shape[0]) and face.detection_confidence > 0.5 and blank.detection_confidence is None
    assert min(loose.shape[:2]) >= 160  # searched as it is (smaller crops are enlarged to 160 px first)
    (det, *_) = rec.detector.detect(np.ascontiguousarray(loose[:, :, ::-1]), to_gray(loose))
    expected = rec.classify(rec.crop(to_gray(loose), [det]))[0]
    np.testing.assert_allclose([face.scores[k] for k in EMOTIONS], expected, atol=1e-5)
    as_they_come = rec.predict_crops([loose, wall], color_order="rgb", reframe=False)
    assert as_they_come[1].scores == blank.scores and as_they_come[0].scores != face.scores


def test_model_info_comes_from_the_model_config(rec):
    from emolens.faces.registry import resolve_auto

    info = rec.model_info()
    assert info["name"] == "random-simple_cnn" and info["version"] == "0" and info["labels"] == list(EMOTIONS)
    assert info["input_size"] == rec.config.preprocess.input_size and info["backend"] == rec.backend.name and info["detector"] == resolve_auto()  # the default detector, "auto", as resolved here
    assert isinstance(info["metrics"], dict)
    json.dumps(info)


def test_onnx_backend_gives_the_same_faces(model_path, photo_rgb):
    pytest.importorskip("onnxruntime")
    torch_result = EmotionRecognizer(model_path, backend="torch").predict(photo_rgb, color_order="rgb")
    onnx_result = EmotionRecognizer(model_path, backend="onnx").predict(photo_rgb, color_order="rgb")
    assert [f.box for f in onnx_result] == [f.box for f in torch_result]
    assert [f.label for f in onnx_result] == [f.label for f in torch_result]
    np.testing.assert_allclose(list(onnx_result[0].scores.values()), list(torch_result[0].scores.values()), atol=1e-4)


def test_predict_images_reports_no_face_and_unreadable_files(rec, photo_rgb, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    cv2.imwrite(str(src / "astronaut.jpg"), photo_rgb[:, :, ::-1])
    cv2.imwrite(str(src / "wall.png"), np.full((100, 100, 3), 200, np.uint8))
    (src / "zero.jpg").write_bytes(b"")
    out = tmp_path / "out"
    report = predict_images([src], recognizer=rec, output=out)
    assert report.images == 2 and report.faces == 1
    assert report.no_face == [str(src / "wall.png")]
    assert len(report.errors) == 1 and "zero.jpg" in report.errors[0]
    assert sorted(p.name for p in report.annotated) == ["astronaut.jpg", "wall.png"]
    rows = json.loads(report.table.read_text())
    assert len(rows) == 1 and rows[0]["path"].endswith("astronaut.jpg")
    again = predict_images([str(src / "*.jpg")], recognizer=rec, output=out, format="csv")  # never overwrites
    assert [p.name for p in again.annotated] == ["astronaut-2.jpg"] and again.table.name == "predictions.csv"
    with pytest.raises(DataError, match="nothing to do"):
        predict_images([tmp_path / "nope"], recognizer=rec, output=out)


@pytest.mark.slow
def test_cli_predict_exit_codes(model_path, photo_rgb, tmp_path, capsys):
    img = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(img), photo_rgb[:, :, ::-1])
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"")
    out = tmp_path / "out"
    assert main(["predict", str(img), str(bad), "--model", str(model_path), "-o", str(out), "--format", "csv"]) == 0
    text = capsys.readouterr()
    assert "1 face" in text.out and "1 could not be read" in text.out and "bad.jpg" in text.err
    assert (out / "astronaut.jpg").exists() and (out / "predictions.csv").exists()
    assert main(["predict", str(bad), "--model", str(model_path), "-o", str(out)]) == 1  # nothing could be done
    assert "no image could be read" in capsys.readouterr().err
    assert main(["predict", str(img), "--model", str(model_path), "--detector", "yunett"]) == 1
    assert "Did you mean 'yunet'" in capsys.readouterr().err


def test_smiling_astronaut_reads_as_happy_with_the_shipped_model(photo_rgb):
    from emolens.models import default_model_path

    if not default_model_path().exists():
        pytest.skip(f"the shipped default model is not installed yet ({default_model_path()})")
    result = EmotionRecognizer().predict(photo_rgb, color_order="rgb")
    assert len(result) == 1 and iou(result[0].box, ASTRONAUT_FACE) > 0.7
    assert result[0].label == "happy", result[0].scores
    img, _ = group_photo()
    assert [f.label for f in EmotionRecognizer().predict(img)] == ["happy"] * 4


def test_cli_predict_hands_its_arguments_to_the_api(monkeypatch, tmp_path):
    import emolens.pipeline as api
    from emolens.pipeline.images import PredictReport

    seen = {}
    built = object()
    monkeypatch.setattr(api, "EmotionRecognizer", lambda *a, **k: seen.update(rec_args=a, rec_kw=k) or built)
    monkeypatch.setattr(api, "predict_images", lambda *a, **k: seen.update(args=a, kw=k) or PredictReport(images=1, table=tmp_path / "t.csv"))
    assert main(["predict", "a.jpg", "photos/", "--format", "csv", "--no-save", "--min-face-size", "30", "--tta", "flip",
                 "--detector", "yunet:y.onnx", "-r", "--overwrite", "--no-align", "--crops", "--no-close-up", "--no-turned", "-o", str(tmp_path)]) == 0
    # The options of the model and detector build one recognizer; predict_images gets it.
    assert seen["rec_args"] == (None,)
    assert seen["rec_kw"] == {"detector": "yunet:y.onnx", "backend": "auto", "tta": "flip", "min_face_size": 30, "detector_threshold": None, "align": False,
                              "close_up": False, "turned_photos": False}
    assert seen["args"] == (["a.jpg", "photos/"], built)
    kw = {k: v for k, v in seen["kw"].items() if k != "on_image"}
    assert kw == {"output": tmp_path, "format": "csv", "save": False, "recursive": True, "overwrite": True, "crops": True}


def test_one_recognizer_serves_several_threads(rec, photo_rgb):
    from concurrent.futures import ThreadPoolExecutor

    img, _ = group_photo()
    ref = [(f.box, f.label) for f in rec.predict(img)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: rec.predict(img), range(8)))
    assert rec.thread_safe
    assert all([(f.box, f.label) for f in r] == ref for r in results)


def _photos(folder, count: int):
    from PIL import Image

    from emolens.pipeline.samples import astronaut

    folder.mkdir()
    for k in range(count):
        Image.fromarray(astronaut()).save(folder / f"{k}.jpg", quality=90)
    return folder


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_the_table_is_written_as_images_are_read_and_survives_ctrl_c(tmp_path, fmt, capsys, monkeypatch):
    """predictions.json|csv grows with each image (no list of every face in memory), reads as the
    whole-list table did, and a run stopped by Ctrl-C leaves a valid table of the images done,
    named in the message."""
    from emolens.errors import Interrupted
    from emolens.pipeline import predict_images

    photos = _photos(tmp_path / "photos", 3)
    report = predict_images([photos], output=tmp_path / "all", format=fmt, save=False)
    assert report.images == 3 and len(report.rows) == 3 and len(report.to_df()) == 3
    if fmt == "json":  # the text json.dumps gives for the whole list
        assert report.table.read_text() == json.dumps(report.rows, indent=2) + "\n"

    def stop_after_two(path, result, error):
        if path is not None and path.name == "1.jpg":
            raise KeyboardInterrupt

    with pytest.raises(Interrupted, match=rf"2 of 3 images done; their table: .*predictions.{fmt}"):
        predict_images([photos], output=tmp_path / "stopped", format=fmt, save=False, on_image=stop_after_two)
    table = tmp_path / "stopped" / f"predictions.{fmt}"
    rows = json.loads(table.read_text()) if fmt == "json" else table.read_text().splitlines()[1:]
    assert len(rows) == 2 and not list((tmp_path / "stopped").glob("*.part"))

    from emolens import cli
    from emolens.pipeline import images

    monkeypatch.setattr(images.EmotionRecognizer, "predict", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    assert cli.main(["predict", str(photos), "--out", str(tmp_path / "cli"), "--format", fmt]) == 130
    assert "0 of 3 images done\nemolens: interrupted" in capsys.readouterr().err
    assert not list((tmp_path / "cli").iterdir())  # nothing done, no table


def test_a_run_that_reads_nothing_leaves_the_old_table_alone(tmp_path):
    from emolens.pipeline import predict_images

    out = tmp_path / "out"
    out.mkdir()
    (out / "predictions.json").write_text('[{"kept": true}]\n')
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(DataError, match="no image could be read"):
        predict_images([tmp_path / "bad.jpg"], output=out, overwrite=True, save=False)
    assert (out / "predictions.json").read_text() == '[{"kept": true}]\n'
    assert sorted(p.name for p in out.iterdir()) == ["predictions.json"]
