"""Training: `train(config) -> TrainResult`, its typed config, checkpoints and calibration.

Example::

    from emolens.training import load_config, train
    result = train(load_config(overrides=["data.path=synthetic", "schedule.epochs=3"]))
    result.model_path  # runs/resnet_fer_small/best.safetensors
"""

from emolens.evaluation.calibration import expected_calibration_error, fit_temperature
from emolens.training.config import TrainConfig, load_config
from emolens.training.trainer import TrainResult, evaluate, load_training_data, train

__all__ = [
    "TrainConfig", "TrainResult", "evaluate", "expected_calibration_error", "fit_temperature",
    "load_config", "load_training_data", "train",
]
