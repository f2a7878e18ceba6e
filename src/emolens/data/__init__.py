"""Reading face datasets: FER-2013 in every form, FER+ labels, any folder-per-class dataset."""

from emolens.data.dataset import SPLITS, FaceDataset

__all__ = ["SPLITS", "FaceDataset"]
