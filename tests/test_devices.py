"""emolens.runtime.devices: the one place that picks devices and CPU threads."""

from __future__ import annotations

import pytest
import torch

from emolens.errors import ConfigError
from emolens.runtime import devices
from emolens.runtime.devices import configure_threads, plan_threads, resolve_device, session_threads


@pytest.fixture
def restore_threads():
    """Put the process's thread counts and plan back: they are process-wide."""
    import cv2

    before = torch.get_num_threads(), cv2.getNumThreads(), devices._plan
    yield
    torch.set_num_threads(before[0])
    cv2.setNumThreads(before[1])
    devices._plan = before[2]


def test_auto_is_the_gpu_when_there_is_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu")
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto", 3) == torch.device("cuda", 1)  # LOCAL_RANK 3 on a 2-GPU node
    assert resolve_device("cuda:0", 3) == torch.device("cuda", 0)


def test_bad_devices_name_the_setting():
    class Dist:  # training passes its DistInfo
        local_rank = 0

    with pytest.raises(ConfigError, match=r"run.device = 'gpu' is not a device; expected auto, cpu, cuda"):
        resolve_device("gpu", Dist())
    with pytest.raises(ConfigError, match=r"--device = 'meta' is not supported"):
        resolve_device("meta", what="--device")


def test_plans_share_the_cores_between_workers():
    two = plan_threads(workers=2, cores=2)
    assert (two.torch, two.opencv, two.onnx_intra, two.onnx_inter) == (1, 1, 1, 1)
    eight = plan_threads(workers=3, cores=8)
    assert (eight.torch, eight.opencv, eight.onnx_intra) == (2, 2, 2)
    alone = plan_threads(cores=8)  # one worker, nothing asked: every library keeps its default
    assert (alone.torch, alone.opencv, alone.onnx_intra, alone.onnx_inter) == (None, None, None, None)
    stream = plan_threads(1, cores=8)  # video and webcam: one classifier thread, OpenCV untouched
    assert (stream.torch, stream.opencv, stream.onnx_intra, stream.onnx_inter) == (1, None, 1, 1)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigError, match="threads must be a whole number"):
            plan_threads(bad)
    with pytest.raises(ConfigError, match="workers must be at least 1"):
        plan_threads(workers=0)


def test_configure_threads_sets_torch_opencv_and_onnx_sessions(restore_threads):
    import cv2

    plan = configure_threads(workers=plan_threads().cores * 2)  # more workers than cores: one thread each
    assert plan.torch == plan.opencv == 1
    assert torch.get_num_threads() == 1 and cv2.getNumThreads() == 1
    assert devices.current_plan() == plan
    assert session_threads() == (1, 1)
    assert session_threads(3) == (3, 1)  # a session's own request wins


def test_backends_leave_the_process_threads_alone(restore_threads, tmp_path):
    from emolens.models import ModelConfig, build_model
    from emolens.runtime import create_backend

    torch.set_num_threads(2)
    net = build_model(ModelConfig(arch="simple_cnn"))
    create_backend(net, "torch")  # no threads asked: nothing changes
    assert torch.get_num_threads() == 2
    create_backend(net, "torch", threads=1)  # asked: through configure_threads, recorded
    assert torch.get_num_threads() == 1 and devices.current_plan().torch == 1


def test_onnx_sessions_take_the_plan(restore_threads):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from emolens.models import ModelConfig, build_model
    from emolens.runtime import create_backend

    net = build_model(ModelConfig(arch="simple_cnn"))
    configure_threads(workers=plan_threads().cores * 2)
    options = create_backend(net, "onnx").session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 1)
    options = create_backend(net, "onnx", threads=2).session.get_session_options()
    assert options.intra_op_num_threads == 2


def test_auto_backend_is_torch_on_a_gpu(monkeypatch):
    import emolens.runtime.backends as backends
    from emolens.models import ModelConfig, build_model

    chosen = []
    monkeypatch.setattr(backends, "onnx_available", lambda: True)
    monkeypatch.setattr(backends, "TorchBackend", lambda net, **kw: chosen.append(("torch", kw["device"])))
    monkeypatch.setattr(devices, "resolve_device", lambda name="auto", *a, **k: torch.device("cuda"))  # a GPU machine
    net = build_model(ModelConfig(arch="simple_cnn"))
    backends.create_backend(net, "auto", device="auto")
    assert chosen == [("torch", "auto")]  # onnxruntime runs on the CPU here, so a GPU means PyTorch


def test_runs_on_cpu_is_resolve_device_without_needing_torch(monkeypatch):
    # Where the answer is sure ("cpu"; "auto" with no GPU driver on Linux) torch is not asked.
    import sys

    assert devices.runs_on_cpu("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devices.runs_on_cpu("auto") and devices.runs_on_cpu(None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert not devices.runs_on_cpu("auto") and not devices.runs_on_cpu("cuda")  # torch is imported here: it is asked
    with pytest.raises(ConfigError, match="not a device"):
        devices.runs_on_cpu("gpu0")
    monkeypatch.delitem(sys.modules, "torch")  # as in a process that has not imported it
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(devices, "_GPU_DRIVER_PATHS", ())
    assert devices.runs_on_cpu("auto")  # no driver: CPU, without asking torch (whose patched answer says GPU)
