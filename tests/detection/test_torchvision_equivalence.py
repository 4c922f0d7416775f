"""A state dict written for torchvision's fasterrcnn_resnet50_fpn loads unchanged into cnnkit's
Faster R-CNN ResNet-50-FPN and gives the same detections (random weights, score threshold 0)."""

import pytest
import torch
from torchvision.models.detection import fasterrcnn_resnet50_fpn as torchvision_fasterrcnn

from cnnkit.detection.faster_rcnn import fasterrcnn_resnet50_fpn
from cnnkit.detection.weights import load_detector_weights


@pytest.fixture(scope="module")
def reference():
    torch.manual_seed(0)
    model = torchvision_fasterrcnn(weights=None, weights_backbone=None, min_size=128, max_size=160,
                                   box_score_thresh=0.0).eval()
    images = [torch.rand(3, 96, 120), torch.rand(3, 80, 72)]
    with torch.no_grad():
        return model.state_dict(), images, model(images)


@pytest.mark.parametrize("memory_format, box_tolerance, score_tolerance", [
    (torch.contiguous_format, 1e-3, 1e-6),  # the same arithmetic as torchvision
    (torch.channels_last, 2e-2, 1e-4),  # faster convolutions, float rounding only
])
def test_same_detections_as_torchvision(reference, tmp_path, memory_format, box_tolerance, score_tolerance):
    state, images, expected = reference
    model = fasterrcnn_resnet50_fpn(min_size=128, max_size=160, box_score_thresh=0.0, memory_format=memory_format)
    path = tmp_path / "fasterrcnn_resnet50_fpn.pth"
    torch.save(state, path)
    report = load_detector_weights(model, path)
    assert not report.missing and not report.unexpected
    for ours, theirs in zip(model.predict(images), expected):
        assert len(ours) == len(theirs["boxes"]) == 100
        assert torch.equal(ours.labels, theirs["labels"])
        assert (ours.scores - theirs["scores"]).abs().max() <= score_tolerance
        assert (ours.boxes - theirs["boxes"]).abs().max() <= box_tolerance


def test_folded_batch_norm_detects_the_same(reference):
    from cnnkit.detection.backbones import fold_frozen_batch_norm
    from torchvision.ops import FrozenBatchNorm2d

    state, images, _ = reference
    model = fasterrcnn_resnet50_fpn(min_size=128, max_size=160, box_score_thresh=0.0)
    model.load_state_dict({k: v for k, v in state.items() if not k.endswith("num_batches_tracked")})
    with torch.no_grad():
        for module in model.modules():  # non-trivial statistics, as trained weights have
            if isinstance(module, FrozenBatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    folded = fold_frozen_batch_norm(model)
    assert not any(isinstance(m, FrozenBatchNorm2d) for m in folded.modules())
    batch = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected, got = model.backbone(batch), folded.backbone(batch)
    for name in expected:
        assert (expected[name] - got[name]).abs().max() <= 1e-4 * expected[name].abs().max()
