"""Each Faster R-CNN stage alone: box coding, anchors, matching, sampling, RoI pooling, losses."""

import torch
from torchvision.models.detection import _utils as tv_utils
from torchvision.models.detection.anchor_utils import AnchorGenerator as TorchvisionAnchors
from torchvision.models.detection.image_list import ImageList
from torchvision.ops import MultiScaleRoIAlign

from cnnkit.detection.anchors import AnchorGenerator
from cnnkit.detection.box_coder import decode_boxes, encode_boxes
from cnnkit.detection.faster_rcnn import faster_rcnn
from cnnkit.detection.postprocess import select_detections
from cnnkit.detection.roi_heads import RoIPooler, fast_rcnn_loss
from cnnkit.detection.sampling import BACKGROUND, IGNORED, match_boxes, sample_balanced


def _boxes(n, generator):
    xy = torch.rand(n, 2, generator=generator) * 50
    wh = torch.rand(n, 2, generator=generator) * 30 + 1
    return torch.cat([xy, xy + wh], 1)


def test_encode_decode_round_trip_and_match_torchvision():
    g = torch.Generator().manual_seed(0)
    boxes, references = _boxes(20, g), _boxes(20, g)
    weights = (10.0, 10.0, 5.0, 5.0)
    deltas = encode_boxes(boxes, references, weights)
    assert torch.allclose(decode_boxes(deltas, references, weights)[:, 0], boxes, atol=1e-4)
    reference = tv_utils.BoxCoder(weights)
    assert torch.allclose(deltas, reference.encode_single(boxes, references), atol=1e-6)
    many = torch.randn(20, 12, generator=g)
    assert torch.allclose(decode_boxes(many, references, weights), reference.decode(many, [references]), atol=1e-5)


def test_anchors_equal_torchvision():
    sizes, ratios = ((32,), (64,)), ((0.5, 1.0, 2.0),) * 2
    ours = AnchorGenerator(sizes, ratios)((64, 96), [(16, 24), (8, 12)], 2)
    features = [torch.zeros(2, 1, 16, 24), torch.zeros(2, 1, 8, 12)]
    theirs = TorchvisionAnchors(sizes, ratios)(ImageList(torch.zeros(2, 3, 64, 96), [(64, 96)] * 2), features)
    assert len(ours) == 2 and torch.equal(ours[0], theirs[0])
    assert ours[0].shape == (16 * 24 * 3 + 8 * 12 * 3, 4)


def test_matcher_thresholds_and_low_quality_matches():
    iou = torch.tensor([[0.9, 0.5, 0.1, 0.2], [0.1, 0.2, 0.25, 0.6]])
    assert match_boxes(iou, 0.7, 0.3).tolist() == [0, IGNORED, BACKGROUND, IGNORED]
    assert match_boxes(iou, 0.7, 0.3, allow_low_quality_matches=True).tolist() == [0, IGNORED, BACKGROUND, 1]
    assert match_boxes(torch.zeros(0, 3), 0.7, 0.3).tolist() == [BACKGROUND] * 3


def test_balanced_sampler_respects_fraction():
    labels = torch.tensor([1] * 10 + [0] * 100 + [-1] * 5)
    positive, negative = sample_balanced(labels, 32, 0.25, torch.Generator().manual_seed(0))
    assert len(positive) == 8 and len(negative) == 24
    assert (labels[positive] == 1).all() and (labels[negative] == 0).all()
    positive, negative = sample_balanced(torch.tensor([1, 0, 0]), 32, 0.5)
    assert len(positive) == 1 and len(negative) == 2


def test_roi_pooler_equals_torchvision_multiscale_roi_align():
    g = torch.Generator().manual_seed(1)
    features = [torch.randn(2, 4, 32, 32, generator=g), torch.randn(2, 4, 16, 16, generator=g),
                torch.randn(2, 4, 8, 8, generator=g)]
    boxes = [_boxes(7, g) * 2, _boxes(5, g) * 4]
    sizes = [(128, 128), (120, 110)]
    ours = RoIPooler(7, 2, "align")(features, boxes, sizes)
    theirs = MultiScaleRoIAlign(["0", "1", "2"], 7, 2)(dict(zip("012", features)), boxes, sizes)
    assert torch.allclose(ours, theirs, atol=1e-6)
    assert RoIPooler(5, method="max")(features[:1], boxes, sizes).shape == (12, 4, 5, 5)


def test_per_class_nms_keeps_overlapping_boxes_of_different_classes():
    scores = torch.tensor([[0.1, 0.9, 0.0], [0.1, 0.8, 0.1], [0.2, 0.0, 0.7]])
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10]])
    detections = select_detections(scores, boxes, (20, 20))
    assert detections.labels.tolist() == [1, 2] and torch.allclose(detections.scores, torch.tensor([0.9, 0.7]))
    assert len(select_detections(scores, boxes, (20, 20), score_thresh=0.05, nms_thresh=0.95)) == 4


def test_fast_rcnn_loss_uses_the_true_class_deltas():
    logits = torch.zeros(3, 3)
    deltas = torch.zeros(3, 12)
    deltas[0, 4:8] = 1.0  # class 1's deltas of RoI 0
    losses = fast_rcnn_loss(logits, deltas, torch.tensor([1, 0, 2]), torch.zeros(3, 4))
    assert torch.isclose(losses["loss_classifier"], torch.log(torch.tensor(3.0)))
    assert torch.isclose(losses["loss_box_reg"], torch.tensor(4 * (1 - 0.5 / 9) / 3))


def test_loss_reaches_every_parameter_and_predict_is_typed():
    torch.manual_seed(0)
    model = faster_rcnn("small", categories=["a", "b"], min_size=64, max_size=64)
    images = [torch.rand(3, 64, 64), torch.rand(3, 48, 64)]
    targets = [{"boxes": torch.tensor([[4.0, 4.0, 30.0, 40.0]]), "labels": torch.tensor([1])},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}]
    model.train()
    losses = model.loss(images, targets)
    assert set(losses) == {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg"}
    sum(losses.values()).backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing
    detections = model.predict(images)
    assert model.training and len(detections) == 2
    assert detections[1].boxes.shape[1] == 4 and (detections[1].boxes[:, 2:] <= torch.tensor([64, 48])).all()


def _greedy_nms(boxes, scores, threshold):
    """The lecture's loop: take the best box, drop those overlapping it by more than the threshold, repeat."""
    from torchvision.ops import box_iou

    order, keep = scores.argsort(descending=True).tolist(), []
    while order:
        best = order.pop(0)
        keep.append(best)
        order = [i for i in order if box_iou(boxes[best][None], boxes[i][None]).item() <= threshold]
    return keep


def test_select_detections_equals_greedy_per_class_nms():
    g = torch.Generator().manual_seed(3)
    boxes = _boxes(60, g)
    scores = torch.rand(60, 3, generator=g)
    scores[:, 0] = 0
    found = select_detections(scores, boxes, (100, 100), score_thresh=0.0, nms_thresh=0.5, detections_per_image=1000)
    expected = set()
    for k in (1, 2):
        for i in _greedy_nms(boxes, scores[:, k], 0.5):
            expected.add((round(scores[i, k].item(), 6), k))
    assert {(round(s, 6), k) for s, k in zip(found.scores.tolist(), found.labels.tolist())} == expected


def test_fpn_pooling_leaves_p6_to_the_rpn():
    """A box large enough for FPN level 6 is pooled from P5 when only four levels pool (torchvision's rule)."""
    torch.manual_seed(0)
    image = (1024, 1024)
    maps = [torch.rand(1, 2, 1024 // s, 1024 // s) for s in (4, 8, 16, 32, 64)]  # P2..P6
    huge = [torch.tensor([[0.0, 0.0, 1000.0, 1000.0]])]  # √area 1000 → level ⌊4 + log2(1000/224)⌋ = 6
    pooled = RoIPooler(7, 2, "align", levels=4)(maps, huge, [image])
    assert torch.equal(pooled, RoIPooler(7, 2, "align")(maps[3:4], huge, [image]))
    assert not torch.equal(pooled, RoIPooler(7, 2, "align")(maps, huge, [image]))


def test_vgg16_backbone_is_the_papers_conv5_map():
    """Fast/Faster R-CNN's VGG-16: conv5_3 without the last max pool, stride 16, 512 channels,
    with weights under the names of cnnkit's (and torchvision's) vgg16 features."""
    from cnnkit.detection.backbones import build_backbone
    from cnnkit.models import create_model

    backbone = build_backbone("vgg16")
    assert backbone(torch.rand(1, 3, 96, 128))["0"].shape == (1, 512, 6, 8)
    vgg = create_model("vgg16")
    backbone.body.load_state_dict({k.removeprefix("features."): v for k, v in vgg.state_dict().items() if k.startswith("features.")})
    model = faster_rcnn("vgg16", categories=["a", "b"], min_size=96, max_size=128)
    assert len(model.predict([torch.rand(3, 96, 128)])) == 1
