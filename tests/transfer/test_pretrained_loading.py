"""Loading pretrained weights from every kind of source, input adaptation, target checks."""

import pytest
import torch
import torch.nn.functional as F

from cnnkit.models import create_model
from cnnkit.models.weights import WeightsMismatchError
from cnnkit.models.recognition import recognise_architecture
from cnnkit.transfer.backbone import adapt_input, check_target, load_pretrained

from transfer_helpers import CIFAR_WEIGHTS, tiny_dataset


def test_plain_state_dict_with_module_prefix_is_recognised(tmp_path):
    model = create_model("resnet32", num_classes=7)
    path = tmp_path / "checkpoint.th"
    torch.save({"best_prec1": 0.0, "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, path)
    pretrained = load_pretrained(path)
    assert pretrained.architecture == "resnet32" and pretrained.model.linear.out_features == 7
    assert pretrained.mean == [0.485, 0.456, 0.406] and any("ImageNet" in note for note in pretrained.notes)
    torch.testing.assert_close(pretrained.model.state_dict()["conv1.weight"], model.state_dict()["conv1.weight"])


def test_weights_that_fit_no_architecture_name_the_closest(tmp_path):
    state = create_model("resnet20").state_dict()
    state.pop("layer3.2.conv2.weight")
    with pytest.raises(WeightsMismatchError, match="closest: resnet20"):
        recognise_architecture(state)


def test_weights_that_do_not_fit_the_named_architecture(pretrained_file):
    with pytest.raises(WeightsMismatchError, match="does not fit architecture 'resnet32'.*missing from the file"):
        load_pretrained(pretrained_file, architecture="resnet32")


def test_safetensors_metadata_gives_architecture_and_normalisation(pretrained_file, shapes):
    pretrained = load_pretrained(pretrained_file)
    assert pretrained.architecture == "resnet20" and pretrained.classes == list(shapes.classes)
    assert pretrained.mean == pytest.approx(shapes.mean) and len(pretrained.fingerprint) == 64


def test_missing_source_and_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_pretrained(tmp_path / "nothing.pth")
    with pytest.raises(ValueError, match="not a cnnkit run"):
        load_pretrained(tmp_path)


def test_grey_to_colour_network_equals_the_grey_image_repeated():
    model = create_model("resnet20").eval()
    conv = model.conv1
    weight = conv.weight.detach().clone()
    mean, std = adapt_input(model, [0.4, 0.4, 0.4], [0.2, 0.2, 0.2], 1)
    assert conv.in_channels == 1 and mean == pytest.approx([0.4]) and std == pytest.approx([0.2])
    grey = torch.rand(2, 1, 8, 8)
    expected = F.conv2d(((grey - 0.4) / 0.2).expand(-1, 3, -1, -1), weight, padding=1)
    torch.testing.assert_close(conv((grey - 0.4) / 0.2), expected, atol=1e-5, rtol=1e-5)


def test_colour_to_grey_network_equals_the_luminance():
    model = create_model("lenet5").eval()
    weight = model.get_submodule(next(n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d))).weight
    weight = weight.detach().clone()
    mean, std = adapt_input(model, [0.5], [0.25], 3)
    assert mean == [0.5] * 3
    colour = torch.rand(2, 3, 32, 32)
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    luminance = (colour * torch.tensor([0.299, 0.587, 0.114])[:, None, None]).sum(1, keepdim=True)
    torch.testing.assert_close(conv((colour - 0.5) / 0.25), F.conv2d((luminance - 0.5) / 0.25, weight, conv.bias, padding=conv.padding),
                               atol=1e-5, rtol=1e-5)


def test_one_class_and_empty_class_are_refused():
    images = torch.rand(10, 3, 8, 8)
    with pytest.raises(ValueError, match="at least two classes"):
        check_target(tiny_dataset("one", images, torch.zeros(10, dtype=torch.int64)))
    labels = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1, 2, 2])  # class 2 only in test
    with pytest.raises(ValueError, match="class\\(es\\) 2 have no train images"):
        check_target(tiny_dataset("gap", images, labels))


@pytest.mark.shared_data
@pytest.mark.skipif(not CIFAR_WEIGHTS.exists(), reason="needs ../shared/data/weights")
def test_real_cifar_resnet20_is_recognised():
    pretrained = load_pretrained(CIFAR_WEIGHTS)
    assert pretrained.architecture == "resnet20" and pretrained.model.linear.out_features == 10
