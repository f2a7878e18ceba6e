"""`compile_model`: torch.compile for batch inference gives the eager model's probabilities."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emolens.errors import ConfigError
from emolens.inference import predict_proba
from emolens.models import ModelConfig, build_model
from emolens.runtime import compile_model, create_backend


def test_compiled_model_matches_eager_for_every_batch_shape() -> None:
    torch.manual_seed(0)
    net = build_model(ModelConfig(arch="simple_cnn")).eval()
    faces = np.random.default_rng(0).integers(0, 256, (21, 48, 48), dtype=np.uint8)
    fast = compile_model(net, batch_size=8)
    assert fast.emolens_config is net.emolens_config
    eager = predict_proba(net, faces, batch_size=8)
    # 21 faces in batches of 8: two full chunks, then 5 padded to 8; 1 face runs eagerly.
    np.testing.assert_allclose(predict_proba(fast, faces, batch_size=8), eager, atol=1e-5)
    np.testing.assert_allclose(predict_proba(fast, faces[:1]), eager[:1], atol=1e-5)
    backend = create_backend(net, compile=True)
    np.testing.assert_allclose(backend.predict_proba(faces[:2]), eager[:2], atol=1e-5)
    with pytest.raises(ConfigError, match="batch_size"):
        compile_model(net, batch_size=0)
    with pytest.raises(ConfigError, match="emolens model"):
        compile_model(torch.nn.Linear(2, 2))
