"""Stable face ids across video frames: greedy IoU matching of boxes between frames."""

from __future__ import annotations

from dataclasses import dataclass

from emolens.faces.base import Box, Detection, iou


@dataclass
class Track:
    id: int
    box: Box
    missed: int = 0  # consecutive frames without a matching detection
    hits: int = 1


class IoUTracker:
    """Give each detection the id of the track it overlaps most (IoU >= `iou_threshold`).

    A track survives `max_missed` frames without a match, so a face the detector loses for a
    moment keeps its id; a detection matching no track starts a new id. Ids count from 1.
    """

    def __init__(self, iou_threshold: float = 0.3, max_missed: int = 15):
        self.iou_threshold = iou_threshold
        self.max_missed = max_missed
        self.tracks: list[Track] = []
        self._next_id = 1

    def update(self, detections: list[Detection]) -> list[int]:
        """Match this frame's detections to tracks; returns one id per detection, in order."""
        pairs = sorted(
            ((iou(t.box, d.box), ti, di) for ti, t in enumerate(self.tracks) for di, d in enumerate(detections)),
            reverse=True,
        )
        ids: list[int | None] = [None] * len(detections)
        used_tracks: set[int] = set()
        for overlap, ti, di in pairs:
            if overlap < self.iou_threshold:
                break
            if ti in used_tracks or ids[di] is not None:
                continue
            track = self.tracks[ti]
            track.box, track.missed, track.hits = detections[di].box, 0, track.hits + 1
            ids[di] = track.id
            used_tracks.add(ti)
        for ti, track in enumerate(self.tracks):
            if ti not in used_tracks:
                track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        for di, det in enumerate(detections):
            if ids[di] is None:
                self.tracks.append(Track(self._next_id, det.box))
                ids[di] = self._next_id
                self._next_id += 1
        return [int(i) for i in ids if i is not None]

    def active(self, max_missed: int | None = None) -> list[Track]:
        """Tracks seen within the last `max_missed` frames (all live tracks by default)."""
        limit = self.max_missed if max_missed is None else max_missed
        return [t for t in self.tracks if t.missed <= limit]

    def reset(self) -> None:
        self.tracks, self._next_id = [], 1
