"""Object detection: R-CNN, Fast R-CNN and Faster R-CNN from small composable stages."""
