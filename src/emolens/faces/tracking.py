"""Stable face ids across video frames: ByteTrack-style association (Zhang et al., ECCV 2022).

Each track predicts where its face is going (a constant-velocity filter on the box centre and
size), and detections are assigned to tracks by the Hungarian method on IoU with those
predictions (`scipy.optimize.linear_sum_assignment`), in two stages: confident detections
first, against every live track; then weak ones (a face half turned away, blurred, in shadow)
against the tracks still unmatched, so a track survives a hard frame instead of ending and
coming back under a new id. Only confident detections start tracks, so weak false hits never
become faces. A track that matches nothing coasts on its prediction for `max_missed` frames.

Written here rather than taken from a package: `supervision`'s ByteTrack pulls opencv-python,
whose cv2 clashes with emolens's opencv-python-headless, and the standalone ByteTrack ports on
PyPI are unmaintained or bring torch/lap builds; the algorithm is about 100 lines on top of
scipy, which scikit-learn already installs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from emolens.errors import ConfigError
from emolens.faces.base import Box, Detection, iou

# A missed face is looked for where its motion would take it (a face walking through the shot,
# further along), but the longer it is unseen the less its last motion says: a still face's
# velocity is the jitter of its boxes. Carried on at full speed, and with its size changing at the
# same rate, that jitter took the expected box of a still, half-turned face off the face before
# the tracker gave it up, and the face's next find started a new id: on that clip of
# benchmarks/smoothing.py, 5 ids at 60 frames/s (23% of the frames under its main id), 3 at 30
# (54%); with the size held and the motion slowing by 0.9 a frame, 2 (48%) and 2 (58%). A face
# moving 12 px a frame is still found after 5 missed frames (tests/test_tracking.py).
_COAST_DECAY = 0.9


@dataclass
class Track:
    id: int
    box: Box  # the last matched box, or the predicted one while the face is missed
    missed: int = 0  # consecutive frames without a matching detection
    hits: int = 1
    confidence: float = 1.0  # of the last matched detection
    # (cx, cy, w, h) and its change per frame: the motion model
    state: np.ndarray = field(default_factory=lambda: np.zeros(4))
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))

    @classmethod
    def start(cls, track_id: int, det: Detection) -> Track:
        x, y, w, h = det.box
        return cls(track_id, det.box, confidence=det.confidence, state=np.array([x + w / 2, y + h / 2, w, h], float))

    def extrapolated(self, frames: int = 1) -> np.ndarray:
        """(cx, cy, w, h) `frames` frames after the last update. The centre moves on at its
        velocity, less each frame (`_COAST_DECAY`); the size changes for one frame at most."""
        moved = (1.0 - _COAST_DECAY**frames) / (1.0 - _COAST_DECAY)  # frames' worth of motion: 1, 1.9, 2.71, ... at most 10
        steps = np.array([moved, moved, min(frames, 1), min(frames, 1)], float)
        return self.state + steps * self.velocity

    def predicted(self, frames: int = 1) -> Box:
        """Where the face should be `frames` frames after its last update (`extrapolated`)."""
        cx, cy, w, h = self.extrapolated(frames)
        w, h = max(w, 2.0), max(h, 2.0)
        return (int(round(cx - w / 2)), int(round(cy - h / 2)), int(round(w)), int(round(h)))

    def next_box(self) -> Box:
        """Where the face should be in the coming frame (its last update was `missed` + 1 ago)."""
        return self.predicted(self.missed + 1)


def _iou_matrix(boxes_a: list[Box], boxes_b: list[Box]) -> np.ndarray:
    return np.array([[iou(a, b) for b in boxes_b] for a in boxes_a], float).reshape(len(boxes_a), len(boxes_b))


def _assign(tracks: list[Track], dets: list[Detection], min_iou: float) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Hungarian matching of tracks to detections on 1 - IoU with each track's prediction.

    Returns (matched (track, detection) index pairs, unmatched tracks, unmatched detections).
    """
    if not tracks or not dets:
        return [], list(range(len(tracks))), list(range(len(dets)))
    overlap = _iou_matrix([t.next_box() for t in tracks], [d.box for d in dets])
    if min(overlap.shape) == 1:  # one track or one face (most video): the best overlap is the matching
        best = int(overlap.argmax())
        rows, cols = [best // overlap.shape[1]], [best % overlap.shape[1]]
    else:  # importing scipy.optimize costs 0.3-0.5 s of start-up: only when there is a choice
        from scipy.optimize import linear_sum_assignment

        rows, cols = linear_sum_assignment(1.0 - overlap)
    pairs = [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if overlap[r, c] >= min_iou]
    used_t, used_d = {r for r, _ in pairs}, {c for _, c in pairs}
    return pairs, [i for i in range(len(tracks)) if i not in used_t], [j for j in range(len(dets)) if j not in used_d]


class ByteTracker:
    """Give each detection the id of the face it continues, or a new id (ids count from 1).

    high: detections at least this confident are matched first and may start new tracks
        (0.5: a Haar face that passed its neighbour count; a probability of 0.5 elsewhere).
    low: weaker detections down to this are used only to continue unmatched live tracks.
    match_iou / low_match_iou: least IoU with a track's predicted box for a match in the first
        and second stage (ByteTrack: 0.2 and 0.5; weak hits must sit squarely on the face).
    max_missed: frames a track may go unmatched (coasting on its prediction) before it ends:
        30 is a second at 30 frames/s, enough for a head turning away and back.
    smoothing: weight of the new measurement in the motion filter, in (0, 1]: lower follows
        jittery detector boxes less closely.
    """

    def __init__(
        self, high: float = 0.5, low: float = 0.1, match_iou: float = 0.2, low_match_iou: float = 0.5,
        max_missed: int = 30, smoothing: float = 0.6,
    ):
        if not 0.0 <= low <= high <= 1.0:
            raise ConfigError(f"tracker thresholds need 0 <= low <= high <= 1, got low={low}, high={high}")
        if max_missed < 0:
            raise ConfigError(f"max_missed must be at least 0, got {max_missed}")
        if not 0.0 < smoothing <= 1.0:
            raise ConfigError(f"smoothing must be in (0, 1], got {smoothing}")
        self.high, self.low = float(high), float(low)
        self.match_iou, self.low_match_iou = float(match_iou), float(low_match_iou)
        self.max_missed = int(max_missed)
        self.smoothing = float(smoothing)
        self.tracks: list[Track] = []
        self._next_id = 1

    def _follow(self, track: Track, det: Detection) -> None:
        """Move the track onto its matched detection (an alpha-beta filter: the steady state of
        ByteTrack's Kalman filter, without its covariance bookkeeping)."""
        x, y, w, h = det.box
        measured = np.array([x + w / 2, y + h / 2, w, h], float)
        steps = track.missed + 1
        predicted = track.extrapolated(steps)
        residual = measured - predicted
        track.state = predicted + self.smoothing * residual
        beta = self.smoothing**2 / (2.0 - self.smoothing)  # critically damped for this alpha
        track.velocity = track.velocity + beta * residual / steps
        track.box, track.missed, track.hits, track.confidence = det.box, 0, track.hits + 1, det.confidence

    def _coast(self, track: Track) -> None:
        # Constant velocity while unseen, as ByteTrack's Kalman filter predicts: a face that
        # was still stays put, one walking through the shot is looked for further along.
        track.missed += 1
        track.box = track.predicted(track.missed)

    def update(self, detections: list[Detection]) -> list[int | None]:
        """Match this frame's detections to tracks: one id per detection, in order; None for a
        weak detection that continues no track (not taken for a face)."""
        ids: list[int | None] = [None] * len(detections)
        strong = [i for i, d in enumerate(detections) if d.confidence >= self.high]
        weak = [i for i, d in enumerate(detections) if self.low <= d.confidence < self.high]
        pairs, left, new = _assign(self.tracks, [detections[i] for i in strong], self.match_iou)
        for ti, k in pairs:
            self._follow(self.tracks[ti], detections[strong[k]])
            ids[strong[k]] = self.tracks[ti].id
        # Second stage: weak detections continue only tracks seen in the last frame.
        recent = [ti for ti in left if self.tracks[ti].missed == 0]
        pairs2, _, _ = _assign([self.tracks[ti] for ti in recent], [detections[i] for i in weak], self.low_match_iou)
        matched2 = set()
        for r, k in pairs2:
            track = self.tracks[recent[r]]
            self._follow(track, detections[weak[k]])
            ids[weak[k]] = track.id
            matched2.add(recent[r])
        for ti in left:
            if ti not in matched2:
                self._coast(self.tracks[ti])
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        for k in new:
            self.tracks.append(Track.start(self._next_id, detections[strong[k]]))
            ids[strong[k]] = self._next_id
            self._next_id += 1
        return ids

    def active(self, max_missed: int | None = None) -> list[Track]:
        """Tracks seen within the last `max_missed` frames (all live tracks by default)."""
        limit = self.max_missed if max_missed is None else max_missed
        return [t for t in self.tracks if t.missed <= limit]

    def reset(self) -> None:
        self.tracks, self._next_id = [], 1
