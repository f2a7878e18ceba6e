"""Model architectures (one file per family), the registry and pickle-free model files."""

from emolens.models import resnet, simple_cnn, timm_adapter, vgg  # noqa: F401  (registers the architectures)
from emolens.models.io import (
    ModelConfig,
    add_class_bias,
    build_model,
    default_model_path,
    load_model,
    read_model_config,
    resolve_model_path,
    save_model,
)
from emolens.models.registry import create_model, list_models, register_family, register_model

__all__ = [
    "ModelConfig", "add_class_bias", "build_model", "create_model", "default_model_path", "list_models",
    "load_model", "read_model_config", "register_family", "register_model", "resolve_model_path", "save_model",
]
