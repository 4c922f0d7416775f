"""open_model: every kind of model file, read once, gives the same outputs as the model it holds."""

import pytest
import torch

from cnnkit import inference
from cnnkit.inference import open_model
from cnnkit.models import create_model
from cnnkit.models.weights import save_weights
from cnnkit.train import TrainConfig, load_trained, train


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    return train(TrainConfig(epochs=1, runs_dir=str(runs), name="digits", checkpoint_every_seconds=0),
                 progress=False).run_dir


@pytest.fixture
def loads(monkeypatch):
    """How many times torch.load was called."""
    calls = []
    real = torch.load

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", counting)
    return calls


def test_a_run_folder_opens_as_its_best_checkpoint_read_once(run_dir, loads):
    opened = open_model(run_dir)
    assert len(loads) == 1 and opened.source == run_dir / "best.pt"
    trained = load_trained(run_dir)
    assert opened.task == "classification" and opened.classes == trained.classes
    assert (opened.mean, opened.std, opened.image_size) == (trained.mean, trained.std, trained.image_size)
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(opened.model(x), trained.model(x))
    assert opened.config["model"] == "sample_net" and not opened.model.training


def test_a_plain_cifar_resnet_file_is_recognised_and_read_once(tmp_path, loads):
    """The layout of akamaster's CIFAR ResNets: a legacy pickle {'best_prec1', 'state_dict'} with
    every key prefixed 'module.' (DataParallel)."""
    torch.manual_seed(0)
    model = create_model("resnet20").eval()
    path = tmp_path / "resnet20-12fca82f.th"
    torch.save({"best_prec1": 91.7, "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, path,
               _use_new_zipfile_serialization=False)
    loads.clear()
    opened = open_model(path)
    assert len(loads) == 1
    assert opened.architecture == "resnet20" and opened.image_size == (32, 32) and len(opened.classes) == 10
    assert opened.mean == inference.IMAGENET_MEAN
    assert any("recognised from the tensors" in note for note in opened.notes)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(opened.model(x), model(x), atol=1e-6)


def test_safetensors_metadata_names_architecture_classes_and_normalisation(tmp_path):
    torch.manual_seed(0)
    model = create_model("lenet5", num_classes=3).eval()
    path = save_weights(model, tmp_path / "lenet.safetensors",
                        {"class_names": ["a", "b", "c"], "mean": [0.1], "std": [0.3]})
    opened = open_model(path)
    assert (opened.architecture, opened.classes, opened.mean, opened.std) == ("lenet5", ["a", "b", "c"], [0.1], [0.3])
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(opened.model(x), model(x))


def test_a_folder_that_is_not_a_run_and_weights_that_fit_nothing(tmp_path):
    with pytest.raises(ValueError, match="is a folder but not a cnnkit run"):
        open_model(tmp_path)
    torch.save({"conv.weight": torch.zeros(3, 3)}, tmp_path / "odd.pt")
    with pytest.raises(ValueError, match="no registered architecture has exactly these 1 tensors"):
        open_model(tmp_path / "odd.pt")


def test_a_run_stopped_before_its_first_epoch_opens_as_its_task(tmp_path):
    from cnnkit.segmentation.task import SegmentationConfig

    run = train(SegmentationConfig(epochs=1, batch_size=4, train_images=8, val_images=2, test_images=2,
                                   runs_dir=str(tmp_path), name="early", checkpoint_every_seconds=0),
                progress=False, stop_after_steps=1).run_dir
    assert not (run / "best.pt").exists()
    opened = open_model(run)
    assert opened.task == "segmentation" and opened.source == run / "last.pt" and len(opened.classes) == 11
