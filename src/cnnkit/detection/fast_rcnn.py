"""Fast R-CNN (Girshick 2015): R-CNN with the convolution shared.

R-CNN (`cnnkit.detection.rcnn`) warps every proposal's pixels and runs the CNN on each; Fast
R-CNN runs the convolutional layers once over the whole image and takes each proposal's
features from the shared map by RoI max pooling to a fixed 7×7 grid (§2.1), then the same
fully connected head, a softmax over K+1 classes and per-class box regressors, trained
together with the multi-task loss on mini-batches of sampled RoIs (§2.3):

    transform → backbone (once) → RoI max pooling of each selective-search proposal
              → fc6, fc7 → cls_score, bbox_pred → per-class NMS → postprocess

The stages are those of Faster R-CNN (`cnnkit.detection.faster_rcnn`) without the RPN:
proposals come from selective search (`cnnkit.detection.proposals`), computed on the image
before resizing. Training proposals are computed once per image and kept in the targets
(`cnnkit.detection.proposals.attach_proposals`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cnnkit.detection.backbones import build_backbone
from cnnkit.detection.proposals import SelectiveSearch
from cnnkit.detection.roi_heads import BoxPredictor, RoIHeads, RoIPooler, TwoMLPHead
from cnnkit.detection.structures import Detections
from cnnkit.detection.transform import DetectionTransform, scale_boxes


class FastRCNN(nn.Module):
    """``FastRCNN(backbone, roi_heads, transform, categories, proposer)``."""

    def __init__(self, backbone: nn.Module, roi_heads: RoIHeads, transform: DetectionTransform,
                 categories: list[str], proposer: SelectiveSearch | None = None) -> None:
        super().__init__()
        self.transform, self.backbone, self.roi_heads = transform, backbone, roi_heads
        self.categories = list(categories)
        self.proposer = proposer or SelectiveSearch()

    def proposals(self, images: list[Tensor], targets: list[dict] | None = None) -> list[Tensor]:
        """Selective-search boxes per image (those kept in ``target["proposals"]`` when present),
        on the image's device."""
        if targets is not None and all("proposals" in t for t in targets):
            return [t["proposals"].to(image.device) for t, image in zip(targets, images)]
        return [self.proposer(image).to(image.device) for image in images]

    def _shared_features(self, images, targets=None):
        proposals = self.proposals(images, targets)
        with_boxes = targets is not None and all("boxes" in t for t in targets)
        batch, scaled_targets = self.transform(images, targets if with_boxes else None)
        proposals = [scale_boxes(p, tuple(image.shape[-2:]), size)
                     for p, image, size in zip(proposals, images, batch.image_sizes)]
        features = list(self.backbone(batch.tensors).values())  # the convolution, once per image
        return batch, scaled_targets, proposals, features

    def loss(self, images: list[Tensor], targets: list[dict]) -> dict[str, Tensor]:
        """``{"loss_classifier", "loss_box_reg"}``: Fast R-CNN's multi-task loss (eq. 1)."""
        batch, targets, proposals, features = self._shared_features(images, targets)
        return self.roi_heads.loss(features, proposals, batch.image_sizes, targets)

    @torch.no_grad()
    def predict(self, images: list[Tensor], proposals: list[Tensor] | None = None) -> list[Detections]:
        was_training = self.training
        self.eval()
        try:
            targets = None if proposals is None else [{"proposals": p} for p in proposals]
            original_sizes = [tuple(image.shape[-2:]) for image in images]
            batch, _, proposals, features = self._shared_features(images, targets)
            detections = self.roi_heads.detect(features, proposals, batch.image_sizes)
            return self.transform.postprocess(detections, batch.image_sizes, original_sizes)
        finally:
            self.train(was_training)


def fast_rcnn(backbone: str = "small", categories: list[str] | None = None, min_size: int = 128, max_size: int = 256,
              representation_size: int = 256, max_proposals: int = 300) -> FastRCNN:
    """Fast R-CNN with RoI max pooling to 7×7, 64 RoIs per image at up to 25 % positives
    (IoU ≥ 0.5, background below; §2.3 also drops IoU < 0.1, kept here as easy negatives) and
    selective-search proposals."""
    if not categories:
        raise ValueError("pass categories (names of classes 1..K)")
    trunk = build_backbone(backbone)
    if backbone.endswith("fpn"):
        raise ValueError("Fast R-CNN here pools from one feature map; choose small or a -c4 backbone")
    roi_heads = RoIHeads(RoIPooler(7, method="max"), TwoMLPHead(trunk.out_channels * 49, representation_size),
                         BoxPredictor(representation_size, len(categories) + 1), batch_size_per_image=64)
    return FastRCNN(trunk, roi_heads, DetectionTransform(min_size, max_size), categories,
                    SelectiveSearch(max_proposals))
