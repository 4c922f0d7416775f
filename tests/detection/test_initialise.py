"""initialise_from: one detector's trained layers start the next (R-CNN → Fast → Faster R-CNN).

The checkpoints here are written as the detection loop wrote them before the training engine
("cnnkit-detection-1"): those still start new runs."""

import pytest
import torch

from cnnkit.detection.fast_rcnn import fast_rcnn
from cnnkit.detection.faster_rcnn import faster_rcnn
from cnnkit.detection.rcnn import rcnn
from cnnkit.detection.checkpoints import BEFORE_ENGINE, DETECTION
from cnnkit.detection.task import initialise_from

CATEGORIES = [str(d) for d in range(10)]


def checkpoint(model, path):
    torch.save({"format": BEFORE_ENGINE[DETECTION], "config": {}, "categories": model.categories,
                "model": model.state_dict()}, path)
    return path


def test_faster_rcnn_takes_all_of_fast_rcnn_but_the_rpn(tmp_path):
    torch.manual_seed(0)
    fast, faster = fast_rcnn("small", CATEGORIES), faster_rcnn("small", CATEGORIES)
    copied = initialise_from(faster, checkpoint(fast, tmp_path / "fast.pt"))
    assert set(copied) == {name for name in faster.state_dict() if not name.startswith("rpn.")}
    for name, tensor in fast.state_dict().items():
        assert torch.equal(faster.state_dict()[name], tensor), name


def test_fast_rcnn_takes_rcnns_backbone_and_fc6_fc7(tmp_path):
    torch.manual_seed(0)
    slow, fast = rcnn(CATEGORIES), fast_rcnn("small", CATEGORIES)
    copied = initialise_from(fast, checkpoint(slow, tmp_path / "rcnn.pt"))
    assert {name.split(".")[0] for name in copied} == {"backbone", "roi_heads"}
    assert not any("box_predictor" in name for name in copied)  # R-CNN has SVMs, not a softmax
    assert torch.equal(fast.roi_heads.box_head.fc6.weight, slow.box_head.fc6.weight)


def test_other_categories_or_nothing_shared_fail(tmp_path):
    other = fast_rcnn("small", ["cat", "dog"])
    with pytest.raises(ValueError, match="categories"):
        initialise_from(faster_rcnn("small", CATEGORIES), checkpoint(other, tmp_path / "other.pt"))
    with pytest.raises(ValueError, match="no tensor matches"):
        wider = fast_rcnn("resnet18-c4", CATEGORIES, representation_size=128)  # no layer of R-CNN's shapes
        initialise_from(wider, checkpoint(rcnn(CATEGORIES), tmp_path / "rcnn.pt"))
