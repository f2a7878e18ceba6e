"""ByteTracker: ids that follow faces through motion, crossings, missed frames and weak detections."""

from __future__ import annotations

import pytest

from emolens.errors import ConfigError
from emolens.faces import ByteTracker, Detection


def moving(x0: float, y0: float, dx: float, dy: float, side: int, frames: int, conf: float = 0.9) -> list[Detection]:
    return [Detection((int(round(x0 + i * dx)), int(round(y0 + i * dy)), side, side), conf) for i in range(frames)]


def test_ids_follow_faces_not_the_order_and_lost_tracks_expire():
    tracker = ByteTracker(max_missed=2)
    a, b = Detection((10, 10, 50, 50), 0.9), Detection((200, 40, 60, 60), 0.8)
    assert tracker.update([a, b]) == [1, 2]
    # Both move a little and come in the other order: ids follow the faces, not the order.
    assert tracker.update([Detection((205, 42, 60, 60), 0.8), Detection((14, 12, 50, 50), 0.9)]) == [2, 1]
    assert tracker.update([]) == []  # both lost for a frame
    assert tracker.update([Detection((16, 12, 50, 50), 0.9)]) == [1]  # found again: same id
    tracker.update([])
    tracker.update([])
    assert [t.id for t in tracker.tracks] == [1]  # face 2, unseen for 4 frames, is gone
    assert tracker.update([Detection((400, 300, 40, 40), 0.7)]) == [3]  # new face, new id
    tracker.reset()
    assert tracker.update([a]) == [1]


def test_a_still_face_whose_boxes_jitter_keeps_its_id_through_a_long_gap():
    """Boxes of one still face that happened to shrink 4 px a frame, then 20 frames unfound (a
    60 frames/s video): the size is not carried on at that rate (it would shrink the expected box
    to nothing, overlapping no later find), so the face is found again under its id."""
    tracker = ByteTracker()
    shrinking = [Detection((300 + 2 * i, 160 + 2 * i, 100 - 4 * i, 140 - 4 * i), 0.9) for i in range(5)]
    ids = [tracker.update([d]) for d in shrinking]
    ids += [tracker.update([]) for _ in range(20)]
    ids.append(tracker.update([Detection((298, 158, 104, 144), 0.9)]))
    assert {i for frame in ids for i in frame} == {1}


def test_a_fast_face_keeps_its_id_through_a_detector_gap():
    # 12 px per frame with a 40 px face: after 5 missed frames the face is 72 px from where it
    # was last seen (no overlap at all); the motion model expects it there.
    path = moving(20, 100, 12, 0, 40, 20)
    tracker = ByteTracker()
    ids = [tracker.update([d]) for d in path[:8]]
    ids += [tracker.update([]) for _ in range(5)]
    ids += [tracker.update([d]) for d in path[13:]]
    assert {i for frame in ids for i in frame} == {1}
    # Without motion prediction (a plain IoU match with the last box) that face would have become id 2.
    last, again = path[7].box, path[13].box
    from emolens.faces import iou

    assert iou(last, again) == 0.0


def test_weak_detections_continue_tracks_but_never_start_one():
    tracker = ByteTracker(high=0.5, low=0.1)
    face = moving(100, 100, 2, 0, 60, 6)
    assert tracker.update([face[0]]) == [1]
    # A half-turned face: the detector is unsure (0.3), yet it is the same face.
    weak = Detection(face[1].box, 0.3)
    assert tracker.update([weak]) == [1]
    assert tracker.tracks[0].missed == 0
    # A weak hit elsewhere (a patterned shirt) is not a face: no id, no track.
    assert tracker.update([face[2], Detection((400, 300, 50, 50), 0.3)]) == [1, None]
    assert [t.id for t in tracker.tracks] == [1]
    # Below `low`, a detection is not used at all.
    assert tracker.update([Detection(face[3].box, 0.05)]) == [None]


def test_crossing_faces_are_assigned_as_a_whole_not_greedily():
    # Two faces pass in front of each other: one assignment for all tracks at once (Hungarian)
    # keeps both ids on their faces through the frames where their boxes overlap.
    tracker = ByteTracker()
    left, right = moving(100, 100, 8, 0, 60, 12), moving(200, 104, -8, 0, 60, 12)
    seen = [tracker.update([l, r]) for l, r in zip(left, right, strict=True)]
    assert all(frame == [1, 2] for frame in seen)


def test_bad_settings_are_rejected():
    with pytest.raises(ConfigError, match="low <= high"):
        ByteTracker(high=0.2, low=0.5)
    with pytest.raises(ConfigError, match="max_missed"):
        ByteTracker(max_missed=-1)
    with pytest.raises(ConfigError, match="smoothing"):
        ByteTracker(smoothing=0)


def test_one_track_or_one_face_is_matched_as_the_hungarian_method_would():
    # The shortcut that spares most videos importing scipy gives linear_sum_assignment's matching.
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    from emolens.faces.tracking import Track, _assign, _iou_matrix

    rng = np.random.default_rng(0)
    for trial in range(200):
        n_tracks, n_dets = (1, int(rng.integers(1, 5))) if trial % 2 else (int(rng.integers(1, 5)), 1)
        boxes = lambda n: [tuple(int(v) for v in (*rng.integers(0, 60, 2), *rng.integers(20, 50, 2))) for _ in range(n)]  # noqa: E731
        tracks = [Track(i + 1, b) for i, b in enumerate(boxes(n_tracks))]
        dets = [Detection(b, 0.9) for b in boxes(n_dets)]
        overlap = _iou_matrix([t.next_box() for t in tracks], [d.box for d in dets])
        rows, cols = linear_sum_assignment(1.0 - overlap)
        expected = [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if overlap[r, c] >= 0.3]
        if len(set(overlap.ravel().tolist())) == overlap.size:  # ties may be broken either way
            assert _assign(tracks, dets, 0.3)[0] == expected
