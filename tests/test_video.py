"""Videos and live streams: tracking, smoothing, outputs, the webcam loop on a video file."""

from __future__ import annotations

import csv
import time
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from emolens.errors import ConfigError, DataError
from emolens.labels import EMOTIONS

pytest.importorskip("skimage")
cv2 = pytest.importorskip("cv2")

from emolens.cli import main  # noqa: E402
from emolens.faces import iou  # noqa: E402
from emolens.pipeline import PIPELINE, EmotionRecognizer, FaceStream, StreamOptions, live_frames, process_video, run_webcam  # noqa: E402
from emolens.pipeline.samples import make_video  # noqa: E402
from emolens.pipeline.video import csv_columns  # noqa: E402

av = pytest.importorskip("av")

FRAMES, EMPTY = 36, (14, 20)  # frames 14-19 show no face


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    import torch

    from emolens.models import ModelConfig, build_model, save_model

    torch.manual_seed(0)
    return save_model(build_model(ModelConfig(arch="simple_cnn")), tmp_path_factory.mktemp("model") / "random.safetensors")


@pytest.fixture(scope="module")
def rec(model_path) -> EmotionRecognizer:
    # onnxruntime with one thread: per session, unlike torch.set_num_threads, and spinning
    # thread pools are what makes inference crawl on a busy 2-core machine.
    pytest.importorskip("onnxruntime")
    return EmotionRecognizer(model_path, min_face_size=48, backend="onnx", threads=PIPELINE.stream_threads)


@pytest.fixture(scope="module")
def one_face(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("video") / "one.mp4", faces=1, frames=FRAMES, empty=EMPTY)


@pytest.fixture(scope="module")
def four_faces(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("video") / "four.avi", faces=4, frames=24, fourcc="MJPG")


def test_video_outputs_csv_annotated_video_and_plot(rec, one_face, tmp_path):
    res = process_video(one_face.path, rec, output=tmp_path, progress=False)
    assert res.frames == FRAMES and res.frames_with_faces == FRAMES - (EMPTY[1] - EMPTY[0])
    assert set(res.outputs) == {"csv", "video", "plot"}
    with open(res.outputs["csv"]) as fh:
        rows = list(csv.DictReader(fh))
    # The video CSV is ImageResult.rows() of each frame: the layout of every emolens table.
    columns = ["frame", "time", "image", "face", "face_id", "x", "y", "w", "h", *EMOTIONS, "label", "score", "detection_confidence", "tilt"]
    assert list(rows[0]) == csv_columns(EMOTIONS) == columns
    assert {r["image"] for r in rows} == {"one.mp4"}
    assert len(rows) == res.faces == res.frames_with_faces  # one face, one row per frame with it
    # One id all through: the track coasts on its motion over the six frames without a face.
    before = {r["face_id"] for r in rows if int(r["frame"]) < EMPTY[0]}
    after = {r["face_id"] for r in rows if int(r["frame"]) >= EMPTY[1]}
    assert before == after == {"1"}
    assert not any(EMPTY[0] <= int(r["frame"]) < EMPTY[1] for r in rows)
    for r in rows:  # every box lands on the true face of its frame
        truth = one_face.boxes[int(r["frame"])][0]
        assert iou(truth, tuple(int(r[k]) for k in "xywh")) > 0.45, r
        assert float(r["time"]) == pytest.approx(int(r["frame"]) / 30.0, abs=1e-3)
        assert sum(float(r[k]) for k in EMOTIONS) == pytest.approx(1.0, abs=1e-3)
    with av.open(str(res.outputs["video"])) as container:  # H.264 in yuv420p: what browsers play
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        assert not container.streams.audio and not res.audio  # the sample video has no sound
        sizes = [(f.height, f.width) for f in container.decode(stream)]
    assert sizes == [(480, 640)] * FRAMES
    assert cv2.imread(str(res.outputs["plot"])) is not None
    assert res.to_df().shape[0] == res.faces and res.summary()["tracks"] == len(before | after)


def test_four_faces_keep_four_stable_ids(rec, four_faces, tmp_path):
    res = process_video(four_faces.path, rec, output=tmp_path, progress=False, save_video=False, plot=False)
    assert set(res.outputs) == {"csv"}
    assert res.tracks == 4 and res.frames == 24
    truth_of: dict[int, set[int]] = {}
    for r in res.rows:
        box = (r["x"], r["y"], r["w"], r["h"])
        best = max(range(4), key=lambda k: iou(four_faces.boxes[r["frame"]][k], box))
        assert iou(four_faces.boxes[r["frame"]][best], box) > 0.4
        truth_of.setdefault(r["face_id"], set()).add(best)
    assert all(len(v) == 1 for v in truth_of.values())  # an id never jumps to another face
    assert sum(1 for r in res.rows) >= 0.9 * 4 * 24


def test_every_n_frames_and_no_overwrite(rec, one_face, tmp_path):
    res = process_video(one_face.path, rec, output=tmp_path, every=5, progress=False, plot=False)
    frames = sorted({r["frame"] for r in res.rows})
    assert res.frames == 8 and all(f % 5 == 0 for f in frames)
    again = process_video(one_face.path, rec, output=tmp_path, every=5, progress=False, plot=False, max_frames=2)
    assert again.outputs["csv"].name == "one-2.csv" and again.frames == 2  # the first run's files are kept
    assert res.outputs["csv"].exists()


class _Flicker:  # a backend whose scores jump between two emotions every frame
    name, source = "stub", "<stub>"

    def __init__(self, config):
        self.config, self.calls = config, 0

    def predict_proba(self, faces):
        self.calls += 1
        p = np.full((len(faces), 7), 0.02)
        p[:, 3 if self.calls % 2 else 4] = 0.88
        return p


def _flicker_stream(smooth: float) -> FaceStream:
    from emolens.models import ModelConfig

    return FaceStream(EmotionRecognizer(_Flicker(ModelConfig(arch="simple_cnn"))), smooth=smooth, detect_every=2)


def _one_face_frame() -> np.ndarray:
    from emolens.pipeline.samples import astronaut_head

    frame = cv2.cvtColor(np.full((240, 320), 120, np.uint8), cv2.COLOR_GRAY2BGR)
    frame[50:177, 100:220] = cv2.resize(astronaut_head(), (120, 127))
    return frame


def test_smoothing_steadies_scores():
    frame = _one_face_frame()

    def happy_series(smooth: float) -> list[float]:
        stream = _flicker_stream(smooth)
        return [stream.process(frame)[0].scores["happy"] for _ in range(12)]

    raw, smoothed = happy_series(0.0), happy_series(0.7)
    assert np.std(raw[4:]) > 0.4 and np.std(smoothed[4:]) < 0.15
    assert abs(np.mean(smoothed[4:]) - 0.45) < 0.1
    with pytest.raises(ConfigError, match="smooth"):
        _flicker_stream(1.0)


def test_smoothing_damps_as_much_per_second_at_60_frames_a_second():
    """`smooth` is a weight per frame of 30 frames/s: at 60 the same weight per 1/30 s (so the
    same flicker a second), at 10 (the web page) or without times the weight per frame."""
    from emolens.pipeline.stream import past_weight

    assert past_weight(0.8, 1 / 60) == pytest.approx(0.8**0.5)
    assert past_weight(0.8, 1 / 30) == past_weight(0.8, 0.1) == past_weight(0.8, 0.0) == 0.8
    frame = _one_face_frame()

    def happy_swing(fps: float | None) -> float:
        stream = _flicker_stream(0.7)
        series = [stream.process(frame, i, None if fps is None else i / fps)[0].scores["happy"] for i in range(30)]
        return float(np.std(series[15:]))

    per_frame = happy_swing(None)
    assert happy_swing(30) == pytest.approx(per_frame) and happy_swing(10) == pytest.approx(per_frame)
    # An alternating score swings (1 - w) / (1 + w) as far under weight w: 0.18 at 0.7, 0.09 at 0.84.
    assert happy_swing(60) < 0.6 * per_frame


def test_a_lost_face_keeps_its_id_for_a_second_at_any_frame_rate(rec, one_face, tmp_path, monkeypatch):
    """The tracker counts frames: a stream told its frame rate keeps a lost face for a second's
    worth of them (never fewer than 30), and `process_video` tells it (and the drawing's memory)
    the file's rate over `every`."""
    assert FaceStream(rec).tracker.max_missed == 30 == FaceStream(rec, fps=10).tracker.max_missed
    assert FaceStream(rec, fps=60).tracker.max_missed == 60
    assert FaceStream(rec, fps=999).tracker.max_missed == PIPELINE.max_frame_rate == 240  # a bogus header's rate
    import emolens.pipeline.video as video
    from emolens.pipeline.draw import LayoutMemory

    # The bars of a missed main face are held half a second alike (15 frames at 30 frames/s).
    assert LayoutMemory.at_rate(60).hold == 30 and LayoutMemory.at_rate(999).hold == 120 and LayoutMemory.at_rate(10).hold == LayoutMemory.at_rate(None).hold == PIPELINE.main_face_hold == 15
    seen, held = [], []
    monkeypatch.setattr(video, "FaceStream", lambda *a, **k: seen.append(k["fps"]) or FaceStream(*a, **k))
    monkeypatch.setattr(video.LayoutMemory, "at_rate", classmethod(lambda cls, fps: held.append(fps) or cls()))
    process_video(one_face.path, rec, output=tmp_path, every=2, progress=False, plot=False, save_video=False, max_frames=2)
    assert seen == held == [pytest.approx(30 / 2)]


def test_a_track_keeps_its_label_until_another_emotion_clearly_leads():
    """Scores that wobble around a tie (happy or neutral by 4 points) keep the track's first label
    with the default margin, where the top score's label flips every frame; a clear change
    (neutral 20 points ahead) shows at once."""
    from emolens.models import ModelConfig

    class NearTie(_Flicker):
        def predict_proba(self, faces):
            self.calls += 1
            p = np.full((len(faces), 7), 0.02)
            p[:, 3], p[:, 4] = ((0.47, 0.43) if self.calls % 2 else (0.43, 0.47)) if self.calls <= 10 else (0.35, 0.55)
            return p

    frame = _one_face_frame()

    def labels(margin: float) -> list[str]:
        stream = FaceStream(EmotionRecognizer(NearTie(ModelConfig(arch="simple_cnn"))), smooth=0, detect_every=2, label_margin=margin)
        return [stream.process(frame)[0].label for _ in range(12)]

    assert PIPELINE.label_margin > 0.04 and labels(PIPELINE.label_margin) == ["happy"] * 10 + ["neutral"] * 2
    assert labels(0.0)[:4] == ["happy", "neutral", "happy", "neutral"]
    with pytest.raises(ConfigError, match="label_margin"):
        StreamOptions(label_margin=1.0)


def test_videos_that_cannot_be_read(rec, tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match=r"notes\.mp4: not a video OpenCV can read"):
        process_video(text, rec, output=tmp_path, progress=False)
    with pytest.raises(DataError, match=r"empty.mp4: empty file \(0 bytes\)"):
        process_video(empty, rec, output=tmp_path, progress=False)
    with pytest.raises(DataError, match="no such video file"):
        process_video(tmp_path / "missing.mp4", rec, output=tmp_path, progress=False)


def test_cli_video(model_path, one_face, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["video", str(one_face.path), "--model", str(model_path), "-o", str(out), "--no-progress", "--every", "3", "--smooth", "0.5"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "12 frames processed" in text and "faces in 10 frames" in text
    assert (out / "one.csv").exists() and (out / "one.annotated.mp4").exists() and (out / "one.emotions.png").exists()
    assert main(["video", str(tmp_path / "missing.mp4"), "--model", str(model_path)]) == 1
    assert "no such video file" in capsys.readouterr().err


def test_live_loop_runs_on_a_video_file_standing_in_for_the_camera(rec, one_face):
    frames = list(live_frames(str(one_face.path), rec, max_frames=10))
    assert len(frames) == 10
    assert frames[0].fps == 0 and all(f.fps > 0 for f in frames[1:])
    assert frames[0].view.shape[0] == 480 and frames[0].view.shape[1] > 640  # frame plus the score panel
    assert {f.result[0].face_id for f in frames} == {1}


def test_a_click_on_a_face_in_the_live_window_follows_it(rec, one_face, monkeypatch):
    """A click on a face pins the live bars to it (the panel says "chosen"); a second click on it
    lets go; a click beside every face changes nothing. The window passes its clicks on."""
    from emolens.pipeline import webcam
    from emolens.pipeline.webcam import follow_click

    frames = live_frames(str(one_face.path), rec, max_frames=10)
    frame = next(frames)
    x, y, w, h = frame.result.faces[0].box
    assert follow_click(frame, (5, 5)) is None and not frame.memory.pinned  # beside the face
    assert follow_click(frame, (x + w // 2, y + h // 2)) == frame.result.faces[0].face_id and frame.memory.pinned
    titles = []
    monkeypatch.setattr(webcam, "score_panel", lambda scores, h, w, labels, title: titles.append(title) or np.zeros((h, w, 3), np.uint8))
    next(frames)
    assert titles[-1] == f"face #{frame.result.faces[0].face_id} (chosen)"
    assert follow_click(frame, (x + w // 2, y + h // 2)) is None and not frame.memory.pinned  # again: let go
    frames.close()

    class ClickingWindow:  # clicks the face on the 2nd frame, quits on the 3rd
        def __init__(self):
            self.shown, self.clicks = 0, 0

        def show(self, image):
            self.shown += 1

        def click(self):
            self.clicks += 1
            return (x + w // 2, y + h // 2) if self.shown == 2 else None

        def key(self):
            return "q" if self.shown == 3 else None

        def closed(self):
            return False

        def close(self):
            pass

    followed = []
    monkeypatch.setattr(webcam, "follow_click", lambda live, point: followed.append(point) or follow_click(live, point))
    window = ClickingWindow()
    run_webcam(str(one_face.path), recognizer=rec, display=window)
    assert window.clicks == 3 and followed == [(x + w // 2, y + h // 2)]


def test_webcam_keys_snapshot_and_quit(rec, one_face, tmp_path):
    class ScriptedWindow:  # presses s on the 3rd frame and q on the 5th
        def __init__(self):
            self.shown, self.closed_ = 0, False

        def show(self, image):
            self.shown += 1

        def key(self):
            return {3: "s", 5: "q"}.get(self.shown)

        def closed(self):
            return False

        def close(self):
            self.closed_ = True

    window = ScriptedWindow()
    report = run_webcam(str(one_face.path), recognizer=rec, display=window, snapshot_dir=tmp_path)
    assert report.frames == 5 and window.shown == 5 and window.closed_
    assert len(report.snapshots) == 1 and cv2.imread(str(report.snapshots[0])).shape[1] > 640
    rec_path = tmp_path / "rec.mp4"
    report = run_webcam(str(one_face.path), recognizer=rec, window=False, record=rec_path, max_frames=6)
    assert report.frames == 6 and report.recording == rec_path
    with av.open(str(rec_path)) as container:  # the recording goes through the same H.264 writer as `emolens video`
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        times = [f.time for f in container.decode(stream)]
    assert times == pytest.approx([i / 30.0 for i in range(6)], abs=2e-3)  # a file source keeps its own clock
    with pytest.raises(ConfigError, match="already exists"):
        run_webcam(str(one_face.path), recognizer=rec, window=False, record=rec_path, max_frames=1)


def test_missing_camera_and_missing_gui_are_clear_errors(rec, monkeypatch):
    import builtins

    with pytest.raises(DataError, match="camera 9 could not be opened"):
        run_webcam(camera=9, recognizer=rec, window=False, max_frames=1)
    from emolens.pipeline.webcam import TkWindow, open_window

    real_import = builtins.__import__

    def no_tkinter(name, *args, **kwargs):  # a Python built without Tk (Debian's python3 without python3-tk)
        if name == "tkinter" or name.startswith("tkinter."):
            raise ImportError("No module named 'tkinter'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tkinter)
    with pytest.raises(ConfigError, match=r"apt install python3-tk.*pip install 'opencv-python<5'"):
        TkWindow("emolens")
    if "NONE" in cv2.getBuildInformation().split("GUI:")[1].splitlines()[0]:  # headless OpenCV: Tk was the way left
        with pytest.raises(ConfigError, match="python3-tk"):
            open_window()
    monkeypatch.setattr(builtins, "__import__", real_import)
    monkeypatch.delenv("DISPLAY", raising=False)
    pytest.importorskip("tkinter")
    with pytest.raises(ConfigError, match=r"no window can be opened here.*--no-window"):
        TkWindow("emolens")


@pytest.fixture
def virtual_display(monkeypatch):
    """A display for a real window: Xvfb on a free display number, as DISPLAY."""
    import shutil
    import subprocess

    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.skip("Xvfb is not installed (apt install xvfb): no display to open a window on")
    number = next(n for n in range(90, 200) if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists())
    server = subprocess.Popen([xvfb, f":{number}", "-screen", "0", "800x600x24", "-nolisten", "tcp"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not Path(f"/tmp/.X11-unix/X{number}").exists():
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            pytest.skip("Xvfb did not start")
        time.sleep(0.05)
    monkeypatch.setenv("DISPLAY", f":{number}")
    yield
    server.terminate()
    server.wait(10)


def test_the_tk_window_shows_frames_and_reports_keys_and_clicks(virtual_display):
    """The default install's live window (Tk): it shows the view at 1:1, and reports a click in the
    view's pixels (what `follow_click` needs) and a key, each once."""
    pytest.importorskip("tkinter")
    from emolens.pipeline.webcam import TkWindow

    window = TkWindow("emolens")
    try:
        window.show(np.full((120, 200, 3), 90, np.uint8))
        assert (window._label.winfo_reqwidth(), window._label.winfo_reqheight()) == (200, 120)
        window._label.event_generate("<Button-1>", x=30, y=40)
        window.root.focus_force()  # key events go to the window with the focus
        window.root.update()
        window.root.event_generate("<Key>", keysym="s")
        window.show(np.full((120, 200, 3), 90, np.uint8))  # the events are handled while a frame is drawn
        assert window.click() == (30, 40) and window.click() is None
        assert window.key() == "s" and window.key() is None
        assert not window.closed()
    finally:
        window.close()
    assert window.closed()


def test_cli_hands_its_arguments_to_the_api(monkeypatch, tmp_path):
    import emolens.pipeline as api
    from emolens.pipeline.video import VideoResult
    from emolens.pipeline.webcam import WebcamReport

    seen = {}

    class Recognizer:  # stands in for the model: the test checks what the CLI builds and passes
        def __init__(self, *a, **k):
            seen.setdefault("recognizer", []).append((a, k))

    monkeypatch.setattr(api, "EmotionRecognizer", Recognizer)
    monkeypatch.setattr(api, "process_video", lambda *a, **k: seen.update(video=(a, k)) or VideoResult("v", 1, 1, 1, 1, 30.0, 10.0, 0.1))
    monkeypatch.setattr(api, "run_webcam", lambda *a, **k: seen.update(webcam=(a, k)) or WebcamReport(frames=3, seconds=1.0))
    assert main(["video", "clip.mp4", "-m", "m.safetensors", "--every", "2", "--smooth", "0.4", "--detect-every", "7", "--bars", "all",
                 "--min-face-size", "60", "--detector-threshold", "0.6", "--no-video", "--backend", "onnx", "--rotate", "270", "--label-margin", "0.2", "-o", str(tmp_path)]) == 0
    (args, kw), = seen.pop("recognizer")
    assert args == ("m.safetensors",)
    assert kw == {"detector": PIPELINE.detector, "backend": "onnx", "min_face_size": 60, "detector_threshold": 0.6, "threads": PIPELINE.stream_threads,
                  "align": PIPELINE.align}
    args, kw = seen["video"]
    assert args[0] == "clip.mp4" and isinstance(args[1], Recognizer)
    assert kw == {"stream": StreamOptions(detect_every=7, smooth=0.4, bars="all", rotate=270, label_margin=0.2), "output": tmp_path, "every": 2, "save_video": False,
                  "plot": True, "max_frames": None, "overwrite": False, "progress": True}
    assert main(["webcam", "--camera", "2", "--no-window", "--record", "r.mp4", "--smooth", "0", "--no-align", "--rotate", "90", "--label-margin", "0"]) == 0
    (args, kw), = seen.pop("recognizer")
    assert args == (None,) and kw["min_face_size"] is None and kw["backend"] == PIPELINE.backend and kw["align"] is False
    args, kw = seen["webcam"]
    assert args[0] is None and isinstance(args[1], Recognizer)
    assert kw["camera"] == 2 and kw["window"] is False and kw["record"].name == "r.mp4"
    # Whatever is not given comes from PIPELINE: the same defaults as the Python API.
    assert kw["stream"] == StreamOptions(smooth=0.0, rotate=90, label_margin=0.0) and kw["stream"].detect_every == PIPELINE.detect_every
    main(["video", "clip.mp4"])
    assert seen["video"][1]["stream"] == StreamOptions() == StreamOptions(PIPELINE.detect_every, PIPELINE.smooth, PIPELINE.bars)


def test_smoothing_is_on_by_default_and_switchable(rec, one_face, tmp_path):
    assert PIPELINE.smooth > 0 and FaceStream(rec).smooth == PIPELINE.smooth
    on = process_video(one_face.path, rec, output=tmp_path, progress=False, save_video=False, plot=False, max_frames=12)
    off = process_video(one_face.path, rec, stream=StreamOptions(smooth=0), output=tmp_path, progress=False, save_video=False,
                        plot=False, max_frames=12)
    assert [r["x"] for r in on.rows] == [r["x"] for r in off.rows]  # the same faces
    assert on.rows[0]["happy"] == off.rows[0]["happy"]  # a track's first frame has no past
    assert any(abs(a["happy"] - b["happy"]) > 1e-4 for a, b in zip(on.rows[1:], off.rows[1:], strict=True))
    with pytest.raises(ConfigError, match="either StreamOptions or its fields"):
        FaceStream(rec, StreamOptions(), smooth=0.2)
    with pytest.raises(ConfigError, match="bars must be one of none, largest, all"):
        StreamOptions(bars="some")


def write_with_sound(path, sample, seconds_of_sound: float, tone_hz: float = 440.0):
    """The sample video's frames re-encoded with PyAV, plus an AAC tone: a source that has sound."""
    cap = cv2.VideoCapture(str(sample.path))
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=30)
        video.width, video.height, video.pix_fmt = 640, 480, "yuv420p"
        audio = out.add_stream("aac", rate=44100, layout="mono")
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")):
                out.mux(packet)
        t = np.arange(int(44100 * seconds_of_sound)) / 44100
        pcm = (0.3 * np.sin(2 * np.pi * tone_hz * t)).astype(np.float32)
        for k in range(0, len(pcm), 1024):
            chunk = av.AudioFrame.from_ndarray(pcm[None, k : k + 1024], format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = 44100, k
            for packet in audio.encode(chunk):
                out.mux(packet)
        for stream in (video, audio):
            for packet in stream.encode():
                out.mux(packet)
    return path


def test_annotated_video_keeps_the_sound(rec, one_face, tmp_path):
    source = write_with_sound(tmp_path / "talk.mp4", one_face, seconds_of_sound=FRAMES / 30.0)
    res = process_video(source, rec, output=tmp_path / "out", progress=False, plot=False)
    assert res.audio
    with av.open(str(res.outputs["video"])) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert video.codec_context.name == "h264" and audio.codec_context.name == "aac"
        assert float(audio.duration * audio.time_base) == pytest.approx(FRAMES / 30.0, abs=0.1)
        samples = np.concatenate([f.to_ndarray().ravel() for f in container.decode(audio)])
    spectrum = np.abs(np.fft.rfft(samples[: 44100 // 2]))
    assert np.argmax(spectrum) * 2 == pytest.approx(440, abs=4)  # the same tone, not silence
    # A cut (max_frames) keeps the sound of the frames written, not the whole track.
    cut = process_video(source, rec, output=tmp_path / "cut", progress=False, plot=False, max_frames=15)
    with av.open(str(cut.outputs["video"])) as container:
        audio = container.streams.audio[0]
        assert float(audio.duration * audio.time_base) == pytest.approx(0.5, abs=0.1)


def test_video_writer_errors_are_clear(tmp_path):
    from emolens.pipeline.video_io import VideoWriter

    writer = VideoWriter(tmp_path / "a.mp4", 30)
    with pytest.raises(DataError, match="uint8"):
        writer.write(np.zeros((10, 10), np.float32))
    writer.write(np.zeros((64, 64, 3), np.uint8))
    writer.write(np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(DataError, match="frame 1 is 32x32, the video is 64x64"):
        writer.close()
    with pytest.raises(DataError, match="cannot write a video here"), VideoWriter(tmp_path / "missing" / "b.mp4", 30) as bad:
        bad.write(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ConfigError, match="fps"):
        VideoWriter(tmp_path / "c.mp4", 0)


def test_pipelined_run_matches_frame_by_frame_processing(rec, one_face):
    from emolens.pipeline.video_io import iter_frames, open_source, prefetch

    def frames():
        src = open_source(str(one_face.path))
        try:
            yield from iter_frames(src, max_frames=12)
        finally:
            src.release()

    stream = FaceStream(rec, smooth=0.5)
    serial = [stream.process(f, i, t) for i, t, f in frames()]
    piped = list(FaceStream(rec, smooth=0.5).run(prefetch(frames())))
    assert [r.frame for r in piped] == list(range(12))
    for a, b in zip(serial, piped, strict=True):
        assert [(f.box, f.face_id, f.label) for f in a] == [(f.box, f.face_id, f.label) for f in b]
        assert [f.scores for f in a] == [f.scores for f in b]


def test_prefetch_hands_over_errors_of_the_reader():
    from emolens.pipeline.video_io import prefetch

    def broken():
        yield 1
        raise DataError("disk gone")

    got = []
    with pytest.raises(DataError, match="disk gone"):
        for x in prefetch(broken()):
            got.append(x)
    assert got == [1]


def test_a_face_that_enters_joins_after_the_background_search_the_same_frame_every_run(rec):
    # CenterFace on onnxruntime may be called by two threads: whole frames are searched in the
    # background, and a face found there joins detect_every // 2 frames later, on every run alike.
    from emolens.pipeline.samples import _background, _paste, astronaut_head

    if not getattr(rec.detector, "reentrant", False):
        pytest.skip(f"{rec.detector.name} searches in the foreground")
    head, bg = astronaut_head(), _background(640, 480)
    frames = []
    for i in range(24):
        canvas = bg.copy()
        _paste(canvas, head, 170 + i, 240, 150, flip=False)
        if i >= 12:  # a second face walks in at frame 12
            _paste(canvas, head, 470, 240, 150, flip=True)
        frames.append((i, i / 30, canvas))

    def first_with_two(stream: FaceStream) -> tuple[int, list]:
        results = list(stream.run(iter(frames)))
        rows = [[(f.box, f.face_id) for f in r] for r in results]
        return next(r.frame for r in results if len(r) == 2), rows

    every = 5  # searches at frames 0, 5, 10, 15: the one of frame 15 sees the new face
    found, rows = first_with_two(FaceStream(rec, detect_every=every))
    assert found == 15 + every // 2
    assert first_with_two(FaceStream(rec, detect_every=every)) == (found, rows)  # however the threads ran
    assert len({face_id for row in rows[found:] for _, face_id in row}) == 2  # two faces, two ids, kept
    rec.detector.reentrant = False  # the foreground search of a detector two threads may not share
    try:
        assert first_with_two(FaceStream(rec, detect_every=every))[0] == 15
    finally:
        rec.detector.reentrant = True


def test_main_face_keeps_one_persons_bars_until_another_is_clearly_larger():
    from emolens.pipeline.draw import LayoutMemory
    from emolens.pipeline.results import FaceResult

    def face(face_id, side):
        return FaceResult.from_proba((10 * (face_id or 0), 0, side, side), np.full(len(EMOTIONS), 1 / len(EMOTIONS)), EMOTIONS, 0.9, face_id)

    choose = LayoutMemory().main_face
    assert choose([face(1, 100), face(2, 105)]).face_id == 2  # the largest first
    assert choose([face(1, 110), face(2, 100)]).face_id == 2  # 1.21x the area: not enough to switch (1.3x)
    assert choose([]) is None
    assert choose([face(1, 100), face(2, 100)]).face_id == 2  # back after a frame without faces
    assert choose([face(1, 120), face(2, 100)]).face_id == 2  # 1.44x for one frame: box jitter, not yet
    assert [choose([face(1, 120), face(2, 100)]).face_id for _ in range(6)][-1] == 1  # and kept: the other person now
    assert LayoutMemory().main_face([face(None, 50), face(None, 60)]).box[2] == 60  # faces without ids: the largest


def test_a_main_face_missed_for_a_moment_keeps_its_bars():
    """Missed for up to `hold` frames (a blink, a turned head), the main face's bars wait for it:
    none shown meanwhile (the live panel keeps its last scores), rather than the bars going to the
    other person for good. Missed longer, or gone, the bars go to the largest face in view."""
    from emolens.pipeline.draw import LayoutMemory
    from emolens.pipeline.results import FaceResult

    def face(face_id, side):
        return FaceResult.from_proba((10 * face_id, 0, side, side), np.full(len(EMOTIONS), 1 / len(EMOTIONS)), EMOTIONS, 0.9, face_id)

    memory = LayoutMemory(hold=3)
    assert memory.main_face([face(1, 100), face(2, 95)]).face_id == 1
    for _ in range(3):
        assert memory.main_face([face(2, 95)]) is None and memory.held and memory.shown.face_id == 1
    assert memory.main_face([face(1, 100), face(2, 95)]).face_id == 1  # back: the bars were its own all along
    for _ in range(3):
        assert memory.main_face([]) is None and memory.held  # frames with no face count too
    assert memory.main_face([face(2, 95)]).face_id == 2 and not memory.held  # a fourth frame: gone, the other's now
    assert LayoutMemory(hold=0).main_face([face(1, 100)]).face_id == 1


def test_a_face_a_viewer_follows_keeps_the_bars_until_it_is_gone():
    from emolens.pipeline.draw import LayoutMemory
    from emolens.pipeline.results import FaceResult

    def face(face_id, side):
        return FaceResult.from_proba((10 * face_id, 0, side, side), np.full(len(EMOTIONS), 1 / len(EMOTIONS)), EMOTIONS, 0.9, face_id)

    memory = LayoutMemory(hold=2)
    assert memory.main_face([face(1, 200), face(2, 100)]).face_id == 1
    memory.follow(2)
    assert [memory.main_face([face(1, 200), face(2, 100)]).face_id for _ in range(5)] == [2] * 5  # 4x the area: no matter
    assert memory.main_face([face(1, 200)]) is None and memory.held and memory.pinned  # missed: held
    assert memory.main_face([face(1, 200)]) is None
    assert memory.main_face([face(1, 200)]).face_id == 1 and not memory.pinned  # gone: the rule again
    memory.follow(2)
    memory.follow(None)
    assert memory.main_face([face(1, 200), face(2, 100)]).face_id == 1


def test_the_live_panel_keeps_a_missed_faces_last_scores(monkeypatch):
    """The webcam window's side panel: the main face missed for a frame keeps its bars, marked
    out of view, rather than going blank or to the other person."""
    from emolens.pipeline import webcam
    from emolens.pipeline.draw import LayoutMemory
    from emolens.pipeline.results import FaceResult, ImageResult

    def face(face_id, side, top):
        p = np.full(len(EMOTIONS), 0.5 / (len(EMOTIONS) - 1))
        p[top] = 0.5
        return FaceResult.from_proba((200 * face_id, 100, side, side), p, EMOTIONS, 0.9, face_id)

    panels = []
    monkeypatch.setattr(webcam, "score_panel", lambda scores, h, w, labels, title: panels.append((scores, title)) or np.zeros((h, w, 3), np.uint8))
    memory, frame = LayoutMemory(), np.zeros((480, 640, 3), np.uint8)
    for faces in ([face(1, 120, 3), face(2, 110, 5)], [face(2, 110, 5)], []):
        webcam.render_live(ImageResult(frame, faces), 30.0, memory=memory)
    first, missed, empty = panels
    assert first[1] == "face #1" and missed == (first[0], "face #1 (out of view)") and empty == missed


def test_the_bars_stay_on_one_of_two_faces_of_about_one_size(rec, tmp_path, monkeypatch):
    """Two people of about one size, each the larger in turn (by 14% of the area): the annotated
    video keeps the bars on one of them instead of moving them every frame."""
    from emolens.pipeline import draw
    from emolens.pipeline.samples import _background, _paste, astronaut_head

    clip = tmp_path / "two.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (640, 480))
    for i in range(20):
        canvas = _background(640, 480)
        _paste(canvas, astronaut_head(), 170, 240, 200 if i % 2 else 214, flip=False)
        _paste(canvas, astronaut_head(), 470, 240, 214 if i % 2 else 200, flip=True)
        writer.write(canvas)
    writer.release()
    shown, largest = [], []
    draw_faces = draw.draw_faces

    def spy(image, faces, **options):
        shown.extend(b.face.face_id for b in draw.plan_layout(faces, image.shape, bars=options["bars"], follow=options["follow"]).bars)
        largest.extend(b.face.face_id for b in draw.plan_layout(faces, image.shape, bars=options["bars"]).bars)
        return draw_faces(image, faces, **options)

    monkeypatch.setattr(draw, "draw_faces", spy)
    process_video(clip, rec, output=tmp_path / "out", progress=False, plot=False)
    assert len(shown) == 20 and sum(a != b for a, b in pairwise(largest)) >= 10  # the premise
    assert len(set(shown)) == 1


def test_a_long_video_is_labelled_in_bounded_memory(tmp_path):
    """A 17-minute video with two faces (30,000 frames at 30/s, synthetic results): the CSV gets
    every row, the plot's timeline keeps at most 2,048 points a face spanning the whole video, and
    memory does not grow with its length (kept as dicts, as before, the rows took 45 MB)."""
    import tracemalloc

    from emolens.pipeline.results import FaceResult, ImageResult
    from emolens.pipeline.video import Timeline, _label_frames

    image = np.zeros((8, 8, 3), np.uint8)
    proba = np.full(len(EMOTIONS), 1 / len(EMOTIONS))

    def frames(n):
        for i in range(n):
            faces = [FaceResult.from_proba((0, 0, 4, 4), proba, EMOTIONS, 0.9, k, tilt=0.0) for k in (1, 2)]
            yield ImageResult(image, faces, name="long.mp4", frame=i, time=i / 30)

    timeline = Timeline(EMOTIONS)
    with open(tmp_path / "long.csv", "w", newline="") as fh:
        table = csv.DictWriter(fh, fieldnames=csv_columns(EMOTIONS))
        table.writeheader()
        tracemalloc.start()
        counts = _label_frames(frames(30_000), table, timeline, None, "largest", None)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert counts.frames == 30_000 and counts.faces == 60_000
    assert peak < 2_000_000, peak
    for face_id in (1, 2):
        t, scores = timeline.series(face_id)
        assert 1_000 <= len(t) <= 2_048 and t[0] == 0.0 and t[-1] > 990.0 and np.all(np.diff(t) > 0)
        assert scores.shape == (len(t), len(EMOTIONS))
    with open(tmp_path / "long.csv") as fh:
        assert sum(1 for _ in fh) == 60_001


def test_ctrl_c_leaves_a_playable_video_a_csv_and_a_plot_of_the_frames_done(rec, model_path, one_face, tmp_path, monkeypatch, capsys):
    """Stopped part way (Ctrl-C after 10 frames), `emolens video` keeps what it did: the annotated
    video is finished and plays, the CSV holds the frames done, the plot is drawn, and the message
    says how many frames and where; the exit code is 130."""
    from emolens.errors import Interrupted
    from emolens.pipeline import video
    from emolens.pipeline.video_io import open_source

    label_frames = video._label_frames

    def stop_after_ten(results, *args):
        def ten():
            for k, result in enumerate(results):
                if k == 10:
                    raise KeyboardInterrupt
                yield result
        return label_frames(ten(), *args)

    monkeypatch.setattr(video, "_label_frames", stop_after_ten)
    with pytest.raises(Interrupted, match=r"10 frames done; csv: .*one.csv, video: .*one.annotated.mp4, plot: .*one.emotions.png"):
        process_video(one_face.path, rec, output=tmp_path / "api", progress=False)
    played = open_source(str(tmp_path / "api" / "one.annotated.mp4"))
    assert played.frame_count == 10
    played.release()
    with open(tmp_path / "api" / "one.csv", newline="") as fh:
        frames = {row["frame"] for row in csv.DictReader(fh)}
    assert len(frames) == 10 and (tmp_path / "api" / "one.emotions.png").stat().st_size > 0
    assert main(["video", str(one_face.path), "--model", str(model_path), "--out", str(tmp_path / "cli"), "--no-progress"]) == 130
    assert "10 frames done; csv:" in capsys.readouterr().err


def test_a_crowd_of_short_tracks_costs_little_memory():
    """2,000 faces seen for 10 frames each (a crowd's tracks coming and going): the plot's timeline
    holds them in about 4 MB (each face's buffer starts small and doubles), where buffers of the
    full 2,048 points would take 131 MB."""
    from emolens.pipeline.video import Timeline

    timeline = Timeline(EMOTIONS)
    scores = dict.fromkeys(EMOTIONS, 1 / len(EMOTIONS))
    for face_id in range(2_000):
        for k in range(10):
            timeline.add(face_id, (face_id + k) / 30, scores)
    assert sum(a.nbytes for a in timeline.points.values()) <= 2_000 * 64 * (1 + len(EMOTIONS)) * 4
    t, held = timeline.series(1_999)
    assert len(t) == 10 and held.shape == (10, len(EMOTIONS)) and np.all(np.diff(t) > 0)


def _mp4_shown_turned_90(path: Path, upright_rgb: np.ndarray, frames: int = 6) -> None:
    """An mp4 as a phone films a portrait clip: each frame stored as the sensor lies (landscape,
    the picture a quarter turn counter-clockwise) and the quarter turn back recorded in the track
    header's display matrix (`tkhd`), which players apply."""
    import struct

    stored = np.ascontiguousarray(np.rot90(upright_rgb, 1))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = stored.shape[1], stored.shape[0], "yuv420p"
        for _ in range(frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(stored, format="rgb24")))
        container.mux(stream.encode())
    data = bytearray(path.read_bytes())
    matrix = data.find(b"tkhd") + 44  # after version/flags, times, track id, duration, layer, group, volume (version 0)
    assert struct.unpack(">9i", data[matrix : matrix + 36]) == (65536, 0, 0, 0, 65536, 0, 0, 0, 1 << 30)  # identity before
    data[matrix : matrix + 36] = struct.pack(">9i", 0, 65536, 0, -65536, 0, 0, 0, 0, 1 << 30)
    path.write_bytes(bytes(data))


def test_a_phone_video_stored_sideways_is_read_and_written_upright(rec, tmp_path):
    from emolens.pipeline.samples import astronaut

    upright = np.full((480, 360, 3), 120, np.uint8)
    upright[60:420] = cv2.resize(astronaut(), (360, 360))  # RGB, portrait
    _mp4_shown_turned_90(clip := tmp_path / "portrait.mp4", upright)
    (truth,) = rec.detector.detect(np.ascontiguousarray(upright[:, :, ::-1]))
    res = process_video(clip, rec, output=tmp_path / "out", progress=False, plot=False)
    with open(res.outputs["csv"]) as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == res.frames == 6  # the face is found in every frame, where it stands upright
    assert all(iou(truth.box, tuple(int(r[k]) for k in "xywh")) > 0.7 for r in rows), rows[0]
    with av.open(str(res.outputs["video"])) as container:  # written upright, as it was shown
        assert {(f.height, f.width) for f in container.decode(container.streams.video[0])} == {(480, 360)}
