"""Mask R-CNN: torchvision's maskrcnn_resnet50_fpn state dict loads unchanged and gives the same
boxes, scores and masks (random weights, score threshold 0); the small model trains its mask branch."""

import pytest
import torch
from torchvision.models.detection import maskrcnn_resnet50_fpn as torchvision_maskrcnn

from cnnkit.detection.mask_head import paste_masks
from cnnkit.detection.mask_rcnn import mask_rcnn, maskrcnn_resnet50_fpn
from cnnkit.detection.weights import load_detector_weights


@pytest.fixture(scope="module")
def reference():
    torch.manual_seed(0)
    model = torchvision_maskrcnn(weights=None, weights_backbone=None, min_size=128, max_size=160,
                                 box_score_thresh=0.0).eval()
    images = [torch.rand(3, 96, 120), torch.rand(3, 80, 72)]
    with torch.no_grad():
        return model.state_dict(), images, model(images)


def test_same_boxes_scores_and_masks_as_torchvision(reference, tmp_path):
    state, images, expected = reference
    model = maskrcnn_resnet50_fpn(min_size=128, max_size=160, box_score_thresh=0.0,
                                  memory_format=torch.contiguous_format)
    path = tmp_path / "maskrcnn_resnet50_fpn.pth"
    torch.save(state, path)
    report = load_detector_weights(model, path)
    assert not report.missing and not report.unexpected
    for ours, theirs, image in zip(model.predict(images), expected, images):
        assert len(ours) == len(theirs["boxes"]) == 100
        assert torch.equal(ours.labels, theirs["labels"])
        assert (ours.scores - theirs["scores"]).abs().max() <= 1e-6
        assert (ours.boxes - theirs["boxes"]).abs().max() <= 1e-3
        assert ours.masks.shape == (100, *image.shape[-2:])
        assert (ours.masks - theirs["masks"][:, 0]).abs().max() <= 1e-4


def test_paste_masks_puts_a_full_mask_inside_its_box():
    masks = torch.ones(1, 28, 28)
    pasted = paste_masks(masks, torch.tensor([[10.0, 20.0, 40.0, 30.0]]), (50, 60))
    assert pasted.shape == (1, 50, 60)
    inside = pasted[0, 22:29, 12:39]
    assert (inside > 0.99).all() and pasted[0, :15].max() == 0 and pasted[0, :, 45:].max() == 0


def test_small_mask_rcnn_has_a_mask_loss_and_every_parameter_learns():
    from cnnkit.data.scenes import digit_scenes

    torch.manual_seed(0)
    scenes = digit_scenes("train", 2)
    model = mask_rcnn("small", scenes.categories)
    images, targets = zip(*(scenes[i] for i in range(2)))
    losses = model.loss(list(images), list(targets))
    assert set(losses) == {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg", "loss_mask"}
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in model.parameters())
    found = model.predict([images[0]])[0]
    assert found.masks.shape == (len(found), 128, 128)
