"""R-CNN and Fast R-CNN share Faster R-CNN's stages; selective search proposals."""

import torch

from cnnkit.detection.fast_rcnn import fast_rcnn
from cnnkit.detection.proposals import SelectiveSearch
from cnnkit.detection.rcnn import rcnn, warp_regions
from cnnkit.detection.roi_heads import RoIPooler, TwoMLPHead
from cnnkit.data.scenes import digit_scenes
from cnnkit.detection.structures import Detections


def test_selective_search_finds_the_digits():
    from torchvision.ops import box_iou

    scenes = digit_scenes("val", count=3)
    for i in range(3):
        proposals = SelectiveSearch(300)(scenes.image(i))
        assert proposals.shape[1] == 4 and 0 < len(proposals) <= 300
        assert (box_iou(scenes.targets[i]["boxes"], proposals).max(1).values >= 0.5).all()


def test_warp_regions_resamples_the_box_contents():
    image = torch.zeros(3, 40, 40)
    image[:, 10:20, 10:30] = 1.0
    regions = warp_regions(image, torch.tensor([[10.0, 10.0, 30.0, 20.0]]), 8, context=0.0)
    assert regions.shape == (1, 3, 8, 8) and regions[..., 1:-1, :].min() > 0.99  # edge rows blend the border


def test_fast_rcnn_is_rcnn_with_the_convolution_shared():
    torch.manual_seed(0)
    scenes = digit_scenes("val", count=2)
    fast = fast_rcnn("small", scenes.categories)
    slow = rcnn(scenes.categories)
    assert isinstance(fast.roi_heads.box_roi_pool, RoIPooler) and fast.roi_heads.box_roi_pool.method == "max"
    assert type(fast.backbone) is type(slow.backbone) and isinstance(slow.box_head, TwoMLPHead)
    shared = {k.replace("roi_heads.", ""): v for k, v in fast.state_dict().items()
              if k.startswith(("backbone.", "roi_heads.box_head."))}
    assert set(shared) <= set(slow.state_dict())  # the same CNN and head, parameter for parameter
    image, target = scenes[0]
    with torch.no_grad():  # R-CNN: one CNN pass per warped region
        assert slow.eval().region_features(image, target["boxes"]).shape == (len(target["boxes"]), 256)
    losses = fast.train().loss([image], [{**target, "proposals": SelectiveSearch()(image)}])
    assert set(losses) == {"loss_classifier", "loss_box_reg"} and torch.isfinite(sum(losses.values()))
    detections = fast.predict([image])
    assert isinstance(detections[0], Detections)
    given = fast.predict([image], [target["boxes"]])  # proposals passed in: no selective search
    assert isinstance(given[0], Detections)


def test_rcnn_fine_tunes_by_its_loss_then_fits_svms_and_box_regressors():
    torch.manual_seed(0)
    scenes = digit_scenes("train", count=4)
    model = rcnn(scenes.categories, max_proposals=30)
    model.regions_per_image = 16
    assert not any(p.requires_grad for p in (*model.svm.parameters(), *model.box_regressor.parameters()))
    images = [scenes.image(i) for i in range(2)]
    losses = model.train().loss(images, scenes.targets[:2])
    assert set(losses) == {"loss_classifier"} and torch.isfinite(losses["loss_classifier"])
    losses["loss_classifier"].backward()
    assert model.classifier.weight.grad.abs().sum() > 0 and model.svm.weight.grad is None
    softmax = model.predict([scenes.image(0)])[0]  # before the SVMs: the fine-tuned softmax scores
    assert not model.svms_fitted and ((softmax.scores > 0) & (softmax.scores <= 1)).all()
    model.fit_svms_and_box_regressors(scenes, log=lambda line: None)
    assert model.svms_fitted and model.box_regressor.weight.shape == (40, 256)
    found = model.predict([scenes.image(0)])[0]
    assert found.boxes.shape[1] == 4 and ((found.scores > 0) & (found.scores < 1)).all()
