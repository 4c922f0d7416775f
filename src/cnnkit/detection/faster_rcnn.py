"""Faster R-CNN (Ren, He, Girshick & Sun 2015): Fast R-CNN whose proposals come from a region
proposal network sharing its convolutional features.

The whole detector is five stages in order (`FasterRCNN.predict`):

    transform  → backbone → rpn (proposals) → roi_heads (boxes, classes) → postprocess
    images       features    (P_i, 4) each     Detections per image          boxes in input pixels

``loss(images, targets)`` runs the same stages and returns the four losses (RPN objectness and
box regression, RoI classification and box regression), trained jointly ("approximate joint
training", §3.2). ``predict(images)`` runs in eval mode without autograd.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cnnkit.detection.anchors import AnchorGenerator
from cnnkit.detection.backbones import build_backbone
from cnnkit.detection.roi_heads import BoxPredictor, RoIHeads, RoIPooler, TwoMLPHead
from cnnkit.detection.rpn import ProposalSettings, RegionProposalNetwork, RPNHead
from cnnkit.detection.structures import Detections
from cnnkit.detection.transform import DetectionTransform


class FasterRCNN(nn.Module):
    """Built from its parts: ``FasterRCNN(backbone, rpn, roi_heads, transform, categories)``.
    ``categories[k - 1]`` names label k."""

    def __init__(self, backbone: nn.Module, rpn: RegionProposalNetwork, roi_heads: RoIHeads,
                 transform: DetectionTransform, categories: list[str]) -> None:
        super().__init__()
        self.transform, self.backbone, self.rpn, self.roi_heads = transform, backbone, rpn, roi_heads
        self.categories = list(categories)

    def loss(self, images: list[Tensor], targets: list[dict]) -> dict[str, Tensor]:
        """The four losses for a batch of ``(3, H, W)`` images and their targets."""
        batch, targets = self.transform(images, targets)
        features = list(self.backbone(batch.tensors).values())
        proposals, predictions = self.rpn(batch.tensors, batch.image_sizes, features, training=True)
        losses = self.rpn.loss(predictions, targets)
        proposals = [p.detach() for p in proposals]
        losses.update(self.roi_heads.loss(features, proposals, batch.image_sizes, targets))
        return losses

    @torch.no_grad()
    def predict(self, images: list[Tensor]) -> list[Detections]:
        """Detections for each image, boxes in the image's own pixels (eval mode inside)."""
        was_training = self.training
        self.eval()
        try:
            original_sizes = [tuple(image.shape[-2:]) for image in images]
            batch, _ = self.transform(images)
            features = list(self.backbone(batch.tensors).values())
            proposals, _ = self.rpn(batch.tensors, batch.image_sizes, features, training=False)
            detections = self.roi_heads.detect(features, proposals, batch.image_sizes)
            return self.transform.postprocess(detections, batch.image_sizes, original_sizes)
        finally:
            self.train(was_training)


def faster_rcnn(backbone: str = "small", categories: list[str] | None = None, num_classes: int | None = None,
                min_size: int = 128, max_size: int = 256, anchor_sizes=(16, 32, 64),
                aspect_ratios=(0.5, 1.0, 2.0), representation_size: int = 256, **roi_options) -> FasterRCNN:
    """A Faster R-CNN for small images on a single-map backbone (`build_backbone` names; an
    FPN backbone gets one anchor size per level). Fewer proposals than the paper's 2000/300,
    since scenes hold a handful of objects, and 32 RoIs per image at up to 1:1 (the paper's 512
    at 1:3 spend most of the head's time on background)."""
    categories = _categories(categories, num_classes)
    trunk = build_backbone(backbone)
    levels = 5 if backbone.endswith("fpn") else 1
    if levels == 1:
        generator = AnchorGenerator((tuple(anchor_sizes),), (tuple(aspect_ratios),))
    else:
        sizes = tuple((s,) for s in (16, 32, 64, 128, 256))
        generator = AnchorGenerator(sizes, (tuple(aspect_ratios),) * 5)
    settings = ProposalSettings(pre_nms_top_n_train=1000, pre_nms_top_n_test=500, post_nms_top_n_train=500,
                                post_nms_top_n_test=100)
    rpn = RegionProposalNetwork(generator, RPNHead(trunk.out_channels, generator.num_anchors_per_location()[0]),
                                settings, batch_size_per_image=128)
    roi_options.setdefault("batch_size_per_image", 32)  # a handful of objects per image: 16 positives,
    roi_options.setdefault("positive_fraction", 0.5)  # 16 background, so the classes are learnt fast
    pooled_levels = 4 if levels == 5 else None  # P2..P5; P6 serves the RPN alone
    roi_heads = RoIHeads(RoIPooler(7, 2, "align", levels=pooled_levels), TwoMLPHead(trunk.out_channels * 49, representation_size),
                         BoxPredictor(representation_size, len(categories) + 1), **roi_options)
    transform = DetectionTransform(min_size, max_size)
    return FasterRCNN(trunk, rpn, roi_heads, transform, categories)


def fasterrcnn_resnet50_fpn(categories: list[str] | None = None, num_classes: int | None = 91, min_size: int = 800,
                            max_size: int = 1333, box_score_thresh: float = 0.05, box_nms_thresh: float = 0.5,
                            box_detections_per_img: int = 100,
                            memory_format: torch.memory_format = torch.channels_last) -> FasterRCNN:
    """Faster R-CNN ResNet-50-FPN with torchvision's ``fasterrcnn_resnet50_fpn`` layout and
    defaults (91 COCO classes including unused ids, 800/1333 resizing, anchors 32..512 over
    P2..P6 at ratios 0.5, 1, 2, 2000/1000 proposals, RoIAlign 7×7, 1024-wide head): its state
    dicts load unchanged (`cnnkit.detection.weights.load_detector_weights`) and detect the same boxes.
    ``memory_format=torch.contiguous_format`` follows torchvision's arithmetic exactly;
    channels_last (the default) is faster and differs by float rounding only."""
    categories = _categories(categories, num_classes)
    backbone = build_backbone("resnet50-fpn", memory_format)
    generator = AnchorGenerator()
    rpn = RegionProposalNetwork(generator, RPNHead(256, 3))
    roi_heads = RoIHeads(RoIPooler(7, 2, "align", levels=4), TwoMLPHead(256 * 49, 1024), BoxPredictor(1024, len(categories) + 1),
                         score_thresh=box_score_thresh, nms_thresh=box_nms_thresh,
                         detections_per_img=box_detections_per_img)
    return FasterRCNN(backbone, rpn, roi_heads, DetectionTransform(min_size, max_size), categories)


def _categories(categories, num_classes) -> list[str]:
    if categories is not None:
        return list(categories)
    if num_classes is None or num_classes < 2:
        raise ValueError("pass categories (names of classes 1..K) or num_classes ≥ 2 (including the background)")
    return [str(k) for k in range(1, num_classes)]
