"""Reading data: images (safely), built-in and standard datasets, batched transforms.

Classification: `load_dataset` (built-ins, MNIST IDX, CIFAR, folders, CSV). Detection:
`detection` (the `DetectionDataset` of boxes), `coco` and `coco_masks` (COCO JSON, validated),
`scenes` (built-in digit scenes). Segmentation: `masks` (CamVid/VOC folders, COCO class masks,
digit scenes labelled per pixel).
"""

from cnnkit.data import transforms
from cnnkit.data.dataset import Dataset, ImageSet
from cnnkit.data.images import MAX_PIXELS, SAMPLE_IMAGES, read_image, sample_image, save_image
from cnnkit.data.sources import list_datasets, load_dataset

__all__ = [
    "MAX_PIXELS",
    "SAMPLE_IMAGES",
    "Dataset",
    "ImageSet",
    "list_datasets",
    "load_dataset",
    "read_image",
    "sample_image",
    "save_image",
    "transforms",
]
