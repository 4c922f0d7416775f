"""Exports are checked against the PyTorch model before they count as written."""

import onnxruntime
import pytest
import torch

from cnnkit.models import create_model
from cnnkit.models import export as export_module
from cnnkit.models.export import export_model
from cnnkit.models.weights import read_metadata


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = create_model("resnet20", num_classes=10)
    net.train()
    with torch.no_grad():  # real batch-norm statistics, so the check is not near-trivially zero
        net(torch.rand(64, 3, 32, 32))
    return net.eval()


def test_onnx_runs_in_onnxruntime_with_any_batch_size(model, tmp_path):
    report = export_model(model, tmp_path / "r20.onnx", (3, 32, 32))
    assert report.format == "onnx" and report.max_abs_difference <= 1e-4
    session = onnxruntime.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    x = torch.rand(5, 3, 32, 32)
    (logits,) = session.run(None, {"images": x.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(logits), model(x), atol=1e-4, rtol=1e-4)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")
def test_torchscript_and_safetensors(model, tmp_path):
    scripted = export_model(model, tmp_path / "r20.pt", (3, 32, 32))
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.load(str(scripted.path))(x), model(x), atol=1e-5, rtol=1e-5)
    weights = export_model(model, tmp_path / "r20.safetensors", (3, 32, 32), metadata={"class_names": list("abcdefghij")})
    assert weights.max_abs_difference == 0.0
    assert read_metadata(weights.path)["class_names"] == list("abcdefghij")


def test_a_disagreeing_export_is_not_kept(model, tmp_path, monkeypatch):
    real_run = export_module._run_onnx
    monkeypatch.setattr(export_module, "_run_onnx", lambda path, batch: real_run(path, batch) + 1e-2)
    target = tmp_path / "bad.onnx"
    with pytest.raises(ValueError, match="differs from the PyTorch model by 1.00e-02"):
        export_model(model, target, (3, 32, 32))
    assert list(tmp_path.iterdir()) == []


def test_unknown_format(model, tmp_path):
    with pytest.raises(ValueError, match="choose a format"):
        export_model(model, tmp_path / "model.h5", (3, 32, 32))
