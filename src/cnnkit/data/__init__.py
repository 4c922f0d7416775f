"""Reading data: images (safely), built-in samples."""

from cnnkit.data.images import MAX_PIXELS, SAMPLE_IMAGES, read_image, sample_image, save_image

__all__ = ["MAX_PIXELS", "SAMPLE_IMAGES", "read_image", "sample_image", "save_image"]
