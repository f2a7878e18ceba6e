"""Dataset export to the layouts other toolkits read."""

from emolens.export.ultralytics_cls import export_dataset, to_ultralytics_cls

__all__ = ["export_dataset", "to_ultralytics_cls"]
