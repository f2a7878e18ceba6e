"""Reading face datasets: FER-2013 in every form, FER+ labels, any folder-per-class dataset."""

from emolens.data.dataset import SPLITS, FaceDataset
from emolens.data.loading import DataWarning, load_dataset

__all__ = ["SPLITS", "DataWarning", "FaceDataset", "load_dataset"]
