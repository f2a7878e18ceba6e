"""Face detection behind one small interface, and face tracking across video frames."""

from emolens.faces.base import Box, Detection, FaceDetector, iou
from emolens.faces.haar import HaarDetector
from emolens.faces.registry import create_detector, list_detectors
from emolens.faces.tracking import ByteTracker, Track

__all__ = [
    "Box", "ByteTracker", "Detection", "FaceDetector", "HaarDetector", "Track",
    "create_detector", "iou", "list_detectors",
]
