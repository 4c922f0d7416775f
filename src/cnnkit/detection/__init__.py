"""Object detection: R-CNN, Fast R-CNN, Faster R-CNN and Mask R-CNN from small composable stages.

Training goes through the engine (`cnnkit.train`) with the tasks of `task` (detection) and
`mask_task` (Mask R-CNN); inference, which imports no training code, through `predict` and
`instance_predict`, which open run folders, checkpoints and torchvision's weights.
"""
