"""Semantic segmentation: a class for every pixel.

The lecture's path in code: the simple idea first (`sliding`: a patch classifier slid over every
pixel), then fully convolutional networks (`fcn`: FCN-32s/16s/8s with learned upsampling and
skips; torchvision's ``fcn_resnet50`` layout, whose weights load unchanged); the standard
metrics (`metrics`); the data (image + label-mask folders, CamVid, VOC, COCO annotations rendered
to class masks, built-in digit scenes) is read by `cnnkit.data.masks`; the training engine's task
(`task`); a trained model read back and scored (`segmenter`); overlays and mask files
(`predict`). Instance segmentation (Mask R-CNN) lives with the detectors in `cnnkit.detection`.

    from cnnkit.segmentation import load_segmenter
    from cnnkit.segmentation.task import SegmentationConfig
    from cnnkit.train import train
    result = train(SegmentationConfig())                   # FCN-8s on digit scenes: runs/fcn-digit-scenes
    segmenter = load_segmenter(result.run_dir)
    labels = segmenter.predict([image])[0]                 # (H, W) class indices
"""

from cnnkit.data.masks import (
    CAMVID_CLASSES,
    IGNORE_INDEX,
    VOC_CLASSES,
    SegmentationDataset,
    SegmentationSplits,
    coco_class_masks,
    digit_scene_segmentation,
    load_camvid,
    load_mask_folder,
    load_segmentation_data,
    load_voc,
    read_label_mask,
)
from cnnkit.segmentation.fcn import FCN, FCNHead, FCNResNet, bilinear_kernel, fcn_resnet50, learned_upsampling
from cnnkit.segmentation.metrics import confusion_matrix, segmentation_scores
from cnnkit.segmentation.sliding import PatchClassifier, sliding_window_logits, sliding_window_reference
from cnnkit.segmentation.segmenter import Segmenter, evaluate_segmenter, load_segmenter

__all__ = [
    "CAMVID_CLASSES",
    "FCN",
    "FCNHead",
    "FCNResNet",
    "IGNORE_INDEX",
    "PatchClassifier",
    "SegmentationDataset",
    "SegmentationSplits",
    "Segmenter",
    "VOC_CLASSES",
    "bilinear_kernel",
    "coco_class_masks",
    "confusion_matrix",
    "digit_scene_segmentation",
    "evaluate_segmenter",
    "fcn_resnet50",
    "learned_upsampling",
    "load_camvid",
    "load_mask_folder",
    "load_segmentation_data",
    "load_segmenter",
    "load_voc",
    "read_label_mask",
    "segmentation_scores",
    "sliding_window_logits",
    "sliding_window_reference",
]
