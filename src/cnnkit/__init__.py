"""cnnkit: convolutional neural networks from the convolution sum to Mask R-CNN."""

__version__ = "0.1.0"
