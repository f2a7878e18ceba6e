"""Exports: models to ONNX or TFLite files that describe themselves, datasets to other toolkits' layouts."""

from emolens.export.formats import DatasetFormat, ModelFormat
from emolens.export.model import ExportedModel, export_model
from emolens.export.ultralytics_cls import export_dataset, to_ultralytics_cls

__all__ = ["DatasetFormat", "ExportedModel", "ModelFormat", "export_dataset", "export_model", "to_ultralytics_cls"]
