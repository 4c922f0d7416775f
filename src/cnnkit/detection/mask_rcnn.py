"""Mask R-CNN (He, Gkioxari, Dollár & Girshick 2017): Faster R-CNN plus a mask branch.

The detector is Faster R-CNN's five stages unchanged — transform, backbone, rpn, roi_heads,
postprocess — with RoI heads that, besides classifying and refining each box, predict its mask:

    roi_heads.detect:  boxes, scores, labels   (Faster R-CNN's box branch)
                       → RoIAlign 14×14 at each detected box → mask head → K+1 masks of 28×28
                       → the sigmoid of the detected class's mask           (R, 28, 28)
    postprocess:       boxes back to the input's pixels; masks pasted into the image (R, H, W)

In training the mask branch sees the positive RoIs sampled for the box branch and adds L_mask
(`cnnkit.detection.mask_head.mask_loss`) to Faster R-CNN's four losses (§3: L = L_cls + L_box +
L_mask). Module names equal torchvision's ``maskrcnn_resnet50_fpn``, whose state dicts load
unchanged (`cnnkit.detection.weights.load_detector_weights`) and give the same boxes, scores and
masks.

``Detections.masks`` holds per-pixel probabilities in [0, 1]; the paper binarises at 0.5
(`binary_masks`).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import box_iou

from cnnkit.detection.faster_rcnn import FasterRCNN, faster_rcnn, fasterrcnn_resnet50_fpn
from cnnkit.detection.mask_head import MaskHead, MaskPredictor, mask_loss, paste_masks, project_masks_on_boxes
from cnnkit.detection.roi_heads import RoIHeads, RoIPooler, fast_rcnn_loss
from cnnkit.detection.structures import Detections
from cnnkit.detection.transform import scale_boxes


class MaskRoIHeads(RoIHeads):
    """Faster R-CNN's RoI heads plus ``mask_roi_pool`` → ``mask_head`` → ``mask_predictor``."""

    def __init__(self, box_heads: RoIHeads, mask_roi_pool: RoIPooler, mask_head: MaskHead,
                 mask_predictor: MaskPredictor) -> None:
        super().__init__(box_heads.box_roi_pool, box_heads.box_head, box_heads.box_predictor,
                         box_heads.fg_iou_thresh, box_heads.bg_iou_thresh, box_heads.batch_size_per_image,
                         box_heads.positive_fraction, box_heads.score_thresh, box_heads.nms_thresh,
                         box_heads.detections_per_img)
        self.mask_roi_pool, self.mask_head, self.mask_predictor = mask_roi_pool, mask_head, mask_predictor

    def mask_logits(self, features: list[Tensor], boxes: list[Tensor], image_sizes) -> Tensor:
        """``(R, K+1, m, m)`` mask logits for the boxes of every image."""
        pooled = self.mask_roi_pool(features, boxes, image_sizes)  # (R, C, 14, 14)
        return self.mask_predictor(self.mask_head(pooled)).float()

    def loss(self, features: list[Tensor], proposals: list[Tensor], image_sizes, targets: list[dict]) -> dict[str, Tensor]:
        """Faster R-CNN's ``loss_classifier`` and ``loss_box_reg`` plus ``loss_mask`` on the positive RoIs.
        Targets carry ``masks (G, H0, W0)`` at the original image size; boxes at the resized size."""
        sampled, labels, regression_targets = self.sample_regions(proposals, targets)
        class_logits, deltas = self.predict_regions(features, sampled, image_sizes)
        losses = fast_rcnn_loss(class_logits, deltas, torch.cat(labels), torch.cat(regression_targets))
        positive_boxes, positive_labels, mask_targets = [], [], []
        for boxes, label, target, size in zip(sampled, labels, targets, image_sizes):
            keep = torch.where(label > 0)[0]
            boxes, label = boxes[keep], label[keep]
            masks, mask_size = target["masks"], self._mask_size()
            positive_boxes.append(boxes)
            positive_labels.append(label)
            if len(boxes) == 0:  # an image without objects (a COCO negative): no mask to learn
                mask_targets.append(boxes.new_zeros((0, mask_size, mask_size)))
                continue
            matched = box_iou(target["boxes"].to(boxes.dtype), boxes).argmax(0)  # the object each positive matched
            original = scale_boxes(boxes, size, tuple(masks.shape[-2:]))  # the box in the mask's pixels
            mask_targets.append(project_masks_on_boxes(masks, original, matched, mask_size))
        logits = self.mask_logits(features, positive_boxes, image_sizes)
        losses["loss_mask"] = mask_loss(logits, torch.cat(positive_labels), torch.cat(mask_targets))
        return losses

    def detect(self, features: list[Tensor], proposals: list[Tensor], image_sizes) -> list[Detections]:
        """Faster R-CNN's detections with ``masks (R, m, m)``: the detected class's mask probabilities."""
        detections = super().detect(features, proposals, image_sizes)
        logits = self.mask_logits(features, [d.boxes for d in detections], image_sizes)
        labels = torch.cat([d.labels for d in detections])
        probabilities = logits[torch.arange(labels.numel(), device=labels.device), labels].sigmoid()
        for detection, masks in zip(detections, probabilities.split([len(d) for d in detections])):
            detection.masks = masks
        return detections

    def _mask_size(self) -> int:
        return 2 * self.mask_roi_pool.output_size  # the predictor's transposed convolution doubles it


class MaskRCNN(FasterRCNN):
    """Faster R-CNN (`FasterRCNN`, its stages and ``loss``) whose ``roi_heads`` are `MaskRoIHeads`;
    ``predict`` pastes each detection's mask into its image at full resolution."""

    def __init__(self, backbone, rpn, roi_heads: MaskRoIHeads, transform, categories: list[str]) -> None:
        super().__init__(backbone, rpn, roi_heads, transform, categories)

    @torch.no_grad()
    def predict(self, images: list[Tensor]) -> list[Detections]:
        """Detections with ``masks (R, H, W)`` probabilities in each image's own pixels."""
        detections = super().predict(images)  # boxes already back in the input's pixels
        for detection, image in zip(detections, images):
            detection.masks = paste_masks(detection.masks, detection.boxes, tuple(image.shape[-2:]))
        return detections


def binary_masks(detections: Detections, threshold: float = 0.5) -> Tensor:
    """``(R, H, W)`` bool: the mask probabilities at ``threshold`` (Mask R-CNN §3: 0.5)."""
    return detections.masks >= threshold


def mask_rcnn(backbone: str = "small", categories: list[str] | None = None, num_classes: int | None = None,
              min_size: int = 128, max_size: int = 256, **options) -> MaskRCNN:
    """A Mask R-CNN for small images: `faster_rcnn`'s stages plus a mask branch of the paper's
    shape (RoIAlign 14×14, four 3×3 convolutions, 28×28 masks), narrower (128) for a CPU."""
    detector = faster_rcnn(backbone, categories, num_classes, min_size, max_size, **options)
    channels = detector.backbone.out_channels
    heads = MaskRoIHeads(detector.roi_heads, RoIPooler(14, 2, "align", levels=detector.roi_heads.box_roi_pool.levels),
                         MaskHead(channels, 128), MaskPredictor(128, len(detector.categories) + 1, 128))
    return MaskRCNN(detector.backbone, detector.rpn, heads, detector.transform, detector.categories)


def maskrcnn_resnet50_fpn(categories: list[str] | None = None, num_classes: int | None = 91, min_size: int = 800,
                          max_size: int = 1333, box_score_thresh: float = 0.05, box_nms_thresh: float = 0.5,
                          box_detections_per_img: int = 100,
                          memory_format: torch.memory_format = torch.channels_last) -> MaskRCNN:
    """Mask R-CNN ResNet-50-FPN in torchvision's ``maskrcnn_resnet50_fpn`` layout: its Faster R-CNN
    (`fasterrcnn_resnet50_fpn`) plus RoIAlign 14×14 on P2..P5, four 256-wide convolutions and
    28×28 masks for 91 COCO classes. Its state dicts load unchanged."""
    detector = fasterrcnn_resnet50_fpn(categories, num_classes, min_size, max_size, box_score_thresh, box_nms_thresh,
                                       box_detections_per_img, memory_format)
    heads = MaskRoIHeads(detector.roi_heads, RoIPooler(14, 2, "align", levels=4), MaskHead(256),
                         MaskPredictor(256, len(detector.categories) + 1))
    return MaskRCNN(detector.backbone, detector.rpn, heads.to(memory_format=memory_format), detector.transform,
                    detector.categories)
