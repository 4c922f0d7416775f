"""Occlusion on a trained network, Grad-CAM and saliency on a synthetic case, layers, patches, figures."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from cnnkit import explain


class BrightSpotNet(nn.Module):
    """A hand-built classifier: class 0 = "there is a bright spot", from a blurring conv, ReLU,
    global average pooling and a linear layer."""

    stage_names = ("features",)

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(2, 2)
        with torch.no_grad():
            self.features[0].weight.copy_(torch.stack([torch.ones(1, 3, 3) / 9, -torch.ones(1, 3, 3) / 9]))
            self.features[0].bias.zero_()
            self.fc.weight.copy_(torch.tensor([[8.0, 0.0], [-8.0, 0.0]]))
            self.fc.bias.zero_()

    def forward(self, x):
        return self.fc(self.features(x).mean((2, 3)))


def spot_image(top=20, left=22, size=6):
    x = torch.zeros(1, 1, 32, 32)
    x[..., top:top + size, left:left + size] = 1.0
    return x


def test_grad_cam_has_the_input_shape_and_points_at_the_object():
    result = explain.grad_cam(BrightSpotNet(), spot_image(), target=0)
    assert result.heatmap.shape == (32, 32) and result.coarse.shape == (32, 32)
    assert float(result.heatmap.max()) == pytest.approx(1.0) and float(result.heatmap.min()) >= 0
    row, col = divmod(int(result.heatmap.argmax()), 32)
    assert 19 <= row <= 26 and 21 <= col <= 28
    assert float(result.heatmap[:10, :10].max()) == 0.0  # nothing far from the spot
    assert result.target == 0 and result.probability > 0.5 and result.layer == "features"


def test_grad_cam_on_a_coarse_layer_is_upsampled():
    from cnnkit.models import create_model

    torch.manual_seed(0)
    result = explain.grad_cam(create_model("resnet20").eval(), torch.randn(1, 3, 32, 32))
    assert result.coarse.shape == (8, 8) and result.heatmap.shape == (32, 32) and result.layer == "layer3"


def test_saliency_is_where_the_score_depends_on_the_pixels():
    result = explain.saliency_map(BrightSpotNet(), spot_image(), target=0)
    assert result.heatmap.shape == (32, 32)
    inside = result.heatmap[20:26, 22:28].mean()
    assert inside > 0.5 and float(result.heatmap[:10, :10].max()) == 0.0


def test_occlusion_map_geometry_and_the_spot():
    model = BrightSpotNet()
    result = explain.occlusion_map(model, spot_image(), target=0, size=8, stride=4, batch_size=5)
    assert result.probability.shape == (7, 7)  # ⌊(32 − 8)/4⌋ + 1
    assert result.drop[:2, :2].abs().max() < 1e-6  # covering empty corners changes nothing
    assert float(result.drop.max()) > 0.1  # covering the spot costs the class
    with pytest.raises(ValueError, match="occluder size"):
        explain.occlusion_map(model, spot_image(), size=40)
    with pytest.raises(ValueError, match="out of range"):
        explain.occlusion_map(model, spot_image(), target=5)


@pytest.fixture(scope="module")
def digits_model():
    """A small CNN trained for a few seconds on scikit-learn's 8×8 digits."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16  # (1797, 1, 8, 8) in [0, 1]
    y = torch.tensor(digits.target)
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(32 * 16, 10),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    train, test = slice(0, 1500), slice(1500, None)
    for epoch in range(10):
        for batch in torch.randperm(1500).split(100):
            optimizer.zero_grad()
            F.cross_entropy(model(x[train][batch]), y[train][batch]).backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(x[test]).argmax(1) == y[test]).float().mean()
    assert accuracy > 0.9, f"the small CNN only reached {accuracy:.2f}"
    return model, x[test], y[test]


def test_occluding_the_digit_lowers_its_class_probability(digits_model):
    model, images, labels = digits_model
    centre, corners = [], []
    for image, label in zip(images[:40], labels[:40]):
        result = explain.occlusion_map(model, image[None], int(label), size=3, stride=1)  # 6×6 map
        centre.append(float(result.drop[2:4, 2:4].mean()))
        corners.append(float(result.drop[[0, 0, -1, -1], [0, -1, 0, -1]].mean()))
        assert float(result.probability.min()) < result.baseline
    assert np.mean(centre) > 0.2 and np.mean(centre) > 3 * np.mean(corners)  # the digit matters, the margin little


def test_layers_by_module_path_and_paper_name():
    from cnnkit.models import create_model

    model = create_model("vgg11")
    assert explain.resolve_layer(model, "conv2_1") == "features.3"
    assert explain.resolve_layer(model, "features.3") == "features.3"
    with pytest.raises(ValueError, match="did you mean"):
        explain.resolve_layer(model, "conv2_9")
    path, weights = explain.conv_weights(model)
    assert path == "features.0" and weights.shape == (64, 3, 3, 3)
    with pytest.raises(ValueError, match="not a convolution"):
        explain.conv_weights(model, "relu1_1")
    path, maps = explain.feature_maps(model, torch.rand(1, 3, 32, 32), "relu2_1")
    assert path == "features.4" and maps.shape == (128, 16, 16) and float(maps.min()) >= 0


def test_top_patches_finds_the_image_with_the_strongest_response():
    model = BrightSpotNet()
    images = torch.zeros(5, 1, 32, 32)
    images[3, :, 4:9, 10:15] = 1.0  # the only bright spot
    images[1, :, 20:22, 20:22] = 0.5
    patches = explain.top_patches(model, images, "features.1", channel=0, k=2)
    assert [p.index for p in patches] == [3, 1]
    assert patches[0].position == (5, 11)  # the first unit whose 3×3 window lies wholly in the spot
    assert patches[0].box == (4, 10, 7, 13)  # that unit's 3×3 receptive field
    assert explain.support_box(torch.zeros(3, 4, 5)) == (0, 0, 4, 5)


def test_figures_are_pngs(tmp_path):
    from cnnkit.models import create_model

    model = create_model("resnet20").eval()
    picture = torch.rand(3, 32, 32)
    _, weights = explain.conv_weights(model)
    paths = [
        explain.filters_figure(weights, tmp_path / "filters.png", "first layer"),
        explain.filters_figure(torch.randn(8, 4, 3, 3), tmp_path / "deep.png", "deeper"),
        explain.feature_maps_figure(torch.rand(16, 8, 8), picture, tmp_path / "maps.png", "maps", count=7),
        explain.deconvnet_figure(picture, [explain.deconvnet(model, picture[None], "layer1")], tmp_path / "deconv.png", "d"),
        explain.heatmap_figure(picture, torch.rand(5, 5), tmp_path / "heat.png", "t", "h"),
    ]
    for path in paths:
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size[0] > 100
