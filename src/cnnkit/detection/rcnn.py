"""R-CNN (Girshick, Donahue, Darrell & Malik 2014): regions with CNN features.

    selective search (~2000 regions; §2.1) → warp each region, with context, to the CNN's input
    size → CNN features of each region (§2.2) → one linear SVM per class (§2.3, hard negative
    mining) → class-specific bounding-box regression (appendix C) → greedy NMS per class

The CNN is the same backbone and fc6-fc7 head that Fast and Faster R-CNN use: a region warped
to ``stride × 7`` pixels gives the 7×7 map that RoI pooling gives them. It is first fine-tuned
as a (K+1)-way classifier on warped regions (IoU ≥ 0.5 with an object: its class; else
background; 1:3 positives to background per batch, §2.3 "supervised pre-training / domain-
specific fine-tuning"; `RCNN.loss`, trained by the engine like any detector's loss); its fc7
output is then the feature. Until the SVMs are fitted, regions are scored by that fine-tuned
softmax (the variant of appendix B), so fine-tuning is validated by mAP like the other
detectors. The closed-form stages (`RCNN.fit_svms_and_box_regressors`) take the ground-truth
boxes as positives and regions with IoU < 0.3 as negatives, starting from a random subset and
adding the negatives the current SVM scores above −1 (hard negative mining). Box regression is
ridge regression from the features of regions with IoU ≥ 0.6 to their box-coding targets.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import box_iou, roi_align

from cnnkit.detection.backbones import build_backbone
from cnnkit.detection.box_coder import BoxCoder
from cnnkit.data.detection import DetectionDataset
from cnnkit.detection.postprocess import select_detections
from cnnkit.detection.proposals import SelectiveSearch
from cnnkit.detection.roi_heads import TwoMLPHead
from cnnkit.detection.sampling import sample_balanced
from cnnkit.detection.structures import Detections
from cnnkit.detection.transform import IMAGENET_MEAN, IMAGENET_STD


def warp_regions(image: Tensor, boxes: Tensor, size: int, context: float = 0.1) -> Tensor:
    """Each box of ``image (3, H, W)``, widened by ``context`` of its size on every side,
    resampled (bilinear) to ``(R, 3, size, size)`` whatever its aspect ratio (R-CNN §2.1 "warp")."""
    widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    pad = torch.stack([-widths, -heights, widths, heights], 1) * context
    rois = torch.cat([boxes.new_zeros(len(boxes), 1), boxes + pad], 1)  # (R, 5): image 0, box
    return roi_align(image[None], rois, size, spatial_scale=1.0, sampling_ratio=2, aligned=True)


class RCNN(nn.Module):
    """``RCNN(backbone, box_head, categories)``: `loss` fine-tunes the CNN on warped regions,
    `fit_svms_and_box_regressors` fits the SVMs and box regressors in closed form, `predict` detects."""

    def __init__(self, backbone: nn.Module, box_head: TwoMLPHead, categories: list[str], region_size: int = 56,
                 proposer: SelectiveSearch | None = None, score_thresh: float = 0.05, nms_thresh: float = 0.3,
                 regions_per_image: int = 32) -> None:
        super().__init__()
        self.backbone, self.box_head, self.categories = backbone, box_head, list(categories)
        self.region_size, self.proposer = region_size, proposer or SelectiveSearch()
        features, classes = box_head.fc7.out_features, len(categories)
        self.classifier = nn.Linear(features, classes + 1)  # the fine-tuning's (K+1)-way softmax
        self.svm = nn.Linear(features, classes)  # one linear SVM per class: w_k · φ + b_k
        self.box_regressor = nn.Linear(features, 4 * classes)  # per-class ridge regression
        for layer in (self.svm, self.box_regressor):  # fitted in closed form, zero until then
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
            layer.requires_grad_(False)
        self.box_coder = BoxCoder((10.0, 10.0, 5.0, 5.0))
        self.score_thresh, self.nms_thresh, self.regions_per_image = score_thresh, nms_thresh, regions_per_image

    @property
    def svms_fitted(self) -> bool:
        return bool(self.svm.weight.any())

    def proposals(self, image: Tensor, target: dict | None = None) -> Tensor:
        """Selective-search boxes ``(P, 4)`` of ``image`` (those kept in ``target["proposals"]``
        when there), on the image's device."""
        boxes = target["proposals"] if target is not None and "proposals" in target else self.proposer(image)
        return boxes.to(image.device)

    def region_features(self, image: Tensor, boxes: Tensor, batch_size: int = 256) -> Tensor:
        """fc7 features ``(R, D)`` of each warped region: the CNN runs once per region."""
        image = _normalised(image)
        out = [self.box_head(self.backbone(warp_regions(image, boxes[start : start + batch_size], self.region_size))["0"])
               for start in range(0, len(boxes), batch_size)]  # (r, 128, 7, 7) → (r, D)
        return torch.cat(out) if out else image.new_zeros((0, self.box_head.fc7.out_features))

    # -- training: fine-tuning by gradient, then the closed-form stages --------------------------
    def labelled_regions(self, proposals: Tensor, target: dict) -> tuple[Tensor, Tensor]:
        """Fine-tuning regions of one image: its proposals and ground-truth boxes, labelled with the
        class of the object they overlap at IoU ≥ 0.5 (else 0, background), ``regions_per_image``
        of them at up to 1:3 positives to background (`sample_balanced`, torch's generator)."""
        boxes = torch.cat([proposals, target["boxes"]])
        iou, label, _ = best_matches(boxes, target)
        labels = torch.where(iou >= 0.5, label, 0)
        positive, negative = sample_balanced(labels, self.regions_per_image, 0.25)
        keep = torch.cat([positive, negative])
        return boxes[keep], labels[keep]

    def loss(self, images: list[Tensor], targets: list[dict]) -> dict[str, Tensor]:
        """``{"loss_classifier"}``: domain-specific fine-tuning (§2.3), the (K+1)-way cross-entropy
        of every image's labelled regions, warped and passed through the CNN together."""
        regions, labels = [], []
        for image, target in zip(images, targets):
            boxes, label = self.labelled_regions(self.proposals(image, target), target)
            regions.append(warp_regions(_normalised(image), boxes, self.region_size))  # (R, 3, s, s)
            labels.append(label)
        features = self.box_head(self.backbone(torch.cat(regions))["0"])  # (ΣR, D)
        return {"loss_classifier": F.cross_entropy(self.classifier(features), torch.cat(labels))}

    def fit_svms_and_box_regressors(self, dataset: DetectionDataset, log=print) -> None:
        """The closed-form stages on the fine-tuned CNN's fc7 features of every proposal and
        ground-truth box of ``dataset``: linear SVMs with hard negative mining (§2.3), then box
        regression (appendix C). The features are computed where the model is, the fits on the CPU."""
        features, ious, labels, matched, regions = self._features(dataset)
        self.train_svms(features, ious, labels, log)
        self.train_box_regressors(features, ious, labels, matched, regions)

    @torch.no_grad()
    def _features(self, dataset: DetectionDataset):
        """fc7 features of every proposal and ground-truth box, with their best IoU, its class,
        the matched box and the region itself (on the CPU)."""
        self.eval()
        device = self.classifier.weight.device
        features, ious, labels, matched, regions = [], [], [], [], []
        for i in range(len(dataset)):
            image, target = dataset.image(i).to(device), dataset.targets[i]
            boxes = torch.cat([self.proposals(image, target).cpu(), target["boxes"]])
            iou, label, match = best_matches(boxes, target)
            features.append(self.region_features(image, boxes.to(device)).cpu())
            ious.append(iou), labels.append(label), matched.append(match), regions.append(boxes)
        return tuple(torch.cat(x) for x in (features, ious, labels, matched, regions))

    def train_svms(self, features, ious, labels, log, rounds: int = 3, C: float = 1.0, steps: int = 200) -> None:
        """One linear SVM per class: hinge loss + ½‖w‖²/C, positives = ground truth (IoU 1),
        negatives = IoU < 0.3 (or another class), mined hard over ``rounds``."""
        weights, biases = [], []
        for k in range(1, len(self.categories) + 1):
            positive = features[(labels == k) & (ious >= 0.999)]
            negatives = features[(ious < 0.3) | ((labels != k) & (ious >= 0.5))]
            active = negatives[torch.randperm(len(negatives))[: max(1, 4 * len(positive))]]
            w, b = torch.zeros(features.shape[1]), torch.zeros(())
            for _ in range(rounds):
                w, b = _fit_linear_svm(positive, active, C, steps, w, b)
                hard = negatives[negatives @ w + b > -1.0]  # the negatives inside the margin
                if len(hard) == 0:
                    break
                active = torch.unique(torch.cat([active, hard]), dim=0)
            weights.append(w), biases.append(b)
        self.svm.weight.copy_(torch.stack(weights))
        self.svm.bias.copy_(torch.stack(biases))
        log(f"R-CNN: {len(self.categories)} linear SVMs trained with hard negative mining")

    def train_box_regressors(self, features, ious, labels, matched, regions, ridge: float = 10.0) -> None:
        """Per class, ridge regression from features to t = encode(matched box, region) on IoU ≥ 0.6."""
        weight = torch.zeros(len(self.categories) * 4, features.shape[1])
        bias = torch.zeros(len(self.categories) * 4)
        for k in range(1, len(self.categories) + 1):
            chosen = (labels == k) & (ious >= 0.6)
            if chosen.sum() < 2:
                continue
            x = torch.cat([features[chosen], torch.ones(int(chosen.sum()), 1)], 1).double()
            t = self.box_coder.encode(matched[chosen], regions[chosen]).double()
            penalty = ridge * torch.eye(x.shape[1], dtype=torch.float64)
            penalty[-1, -1] = 0  # no penalty on the bias
            solution = torch.linalg.solve(x.T @ x + penalty, x.T @ t).float()  # (D+1, 4)
            weight[4 * (k - 1) : 4 * k] = solution[:-1].T
            bias[4 * (k - 1) : 4 * k] = solution[-1]
        self.box_regressor.weight.copy_(weight)
        self.box_regressor.bias.copy_(bias)

    # -- inference ------------------------------------------------------------------------------
    def score_regions(self, features: Tensor, boxes: Tensor) -> tuple[Tensor, Tensor]:
        """Scores ``(R, K+1)`` (column 0 the background) and boxes: the SVMs' margins squashed to
        (0, 1) and each class's regressed box ``(R, K+1, 4)`` once they are fitted; before (during
        fine-tuning) the softmax of the (K+1)-way classifier and the regions themselves ``(R, 4)``."""
        if not self.svms_fitted:
            return F.softmax(self.classifier(features), 1), boxes
        scores = torch.sigmoid(self.svm(features))  # (R, K)
        scores = torch.cat([scores.new_zeros(len(boxes), 1), scores], 1)
        deltas = torch.cat([features.new_zeros(len(boxes), 4), self.box_regressor(features)], 1)
        return scores, self.box_coder.decode(deltas, boxes)  # (R, K+1, 4)

    @torch.no_grad()
    def predict(self, images: list[Tensor], proposals: list[Tensor] | None = None) -> list[Detections]:
        was_training = self.training
        self.eval()
        try:
            results = []
            for i, image in enumerate(images):
                boxes = self.proposals(image, None if proposals is None else {"proposals": proposals[i]})
                scores, boxes = self.score_regions(self.region_features(image, boxes), boxes)
                results.append(select_detections(scores, boxes, tuple(image.shape[-2:]), self.score_thresh,
                                                 self.nms_thresh))
            return results
        finally:
            self.train(was_training)


def best_matches(boxes: Tensor, target: dict) -> tuple[Tensor, Tensor, Tensor]:
    """For each of ``boxes (R, 4)``: its highest IoU with the target's objects ``(R,)``, that
    object's label ``(R,)`` and box ``(R, 4)`` (0, 0 and the box itself in an image without objects)."""
    if len(target["boxes"]) == 0:
        return boxes.new_zeros(len(boxes)), torch.zeros(len(boxes), dtype=torch.int64, device=boxes.device), boxes
    iou, index = box_iou(boxes, target["boxes"]).max(1)
    return iou, target["labels"][index], target["boxes"][index]


def _normalised(image: Tensor) -> Tensor:
    """``image (3, H, W)`` in [0, 1] normalised with the ImageNet mean and std of the backbones."""
    mean = torch.tensor(IMAGENET_MEAN, device=image.device)[:, None, None]
    std = torch.tensor(IMAGENET_STD, device=image.device)[:, None, None]
    return (image - mean) / std


def _fit_linear_svm(positive: Tensor, negative: Tensor, C: float, steps: int, w: Tensor, b: Tensor):
    """Minimise ½‖w‖² + C Σ max(0, 1 − y (w·x + b)) (mean over examples) by L-BFGS from (w, b)."""
    x = torch.cat([positive, negative])
    y = torch.cat([torch.ones(len(positive)), -torch.ones(len(negative))])
    w, b = w.clone().requires_grad_(True), b.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def objective():
        optimizer.zero_grad()
        loss = 0.5 * (w * w).sum() / (C * len(x)) + F.relu(1 - y * (x @ w + b)).pow(2).mean()  # squared hinge
        loss.backward()
        return loss

    optimizer.step(objective)
    return w.detach(), b.detach()


def rcnn(categories: list[str], backbone: str = "small", representation_size: int = 256,
         max_proposals: int = 300) -> RCNN:
    """R-CNN on a stride-8 backbone: regions warped to 56×56 give a 7×7 map, as RoI pooling does."""
    if not categories:
        raise ValueError("pass categories (names of classes 1..K)")
    trunk = build_backbone(backbone)
    return RCNN(trunk, TwoMLPHead(trunk.out_channels * 49, representation_size), categories,
                proposer=SelectiveSearch(max_proposals))
