"""Paddle Inference on a GPU host uses this process's GPU (issue 18 point 14), not GPU 0 for every process. No GPU
here: Paddle's device query and Paddle Inference's Config are replaced by recorders (planted conditions)."""

import paddle
import paddle.inference as pi
import pytest

from passl.inference import InferencePredictor, export_model, on_gpu, process_gpu_id
from tests.inference.helpers import random_model


@pytest.mark.parametrize(
    "device, flags, expected", [("gpu:3", "", 3), ("gpu:0", "5", 0), ("cpu", "2", 2), ("cpu", "", 0)]
)
def test_process_gpu_id(monkeypatch, device, flags, expected):
    monkeypatch.setattr(paddle.device, "get_device", lambda: device)
    monkeypatch.setenv("FLAGS_selected_gpus", flags)
    assert process_gpu_id() == expected
    assert on_gpu() == device.startswith("gpu")


class _Recorder:
    calls = []

    def __init__(self, *args):
        pass

    def __getattr__(self, name):
        return lambda *a: _Recorder.calls.append((name, a))


class _FakePredictor:
    def get_input_names(self):
        return ["x"]

    def get_output_names(self):
        return ["y"]


def test_inference_predictor_takes_the_process_gpu(monkeypatch, tmp_path):
    model = random_model(depths=[1, 1, 1, 1], dims=[8, 16, 24, 32])
    model.eval()
    export_model(model, str(tmp_path / "model"), [1, 3, 32, 32])
    model_dir = str(tmp_path)
    monkeypatch.setattr(paddle.device, "get_device", lambda: "gpu:3")  # as under launch --devices 0,1,2,3 rank 3
    monkeypatch.setattr(pi, "Config", _Recorder)
    monkeypatch.setattr(pi, "create_predictor", lambda config: _FakePredictor())
    _Recorder.calls = []
    InferencePredictor(model_dir, use_gpu=True)
    gpu_calls = [a for name, a in _Recorder.calls if name == "enable_use_gpu"]
    assert gpu_calls and gpu_calls[0][1] == 3, _Recorder.calls
