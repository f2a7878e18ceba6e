"""The HTTP API and the webcam page: `create_app` builds the app, `serve` runs it with uvicorn."""

from emolens.serving.app import create_app
from emolens.serving.limits import ServerLimits
from emolens.serving.server import serve

__all__ = ["ServerLimits", "create_app", "serve"]
