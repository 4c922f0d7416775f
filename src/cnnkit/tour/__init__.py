"""``cnnkit tour``: the whole lecture in one command, on built-in data, written up as a page.

The stages, in the lecture's order (each a module here with ``run(section, context)``):

1. :mod:`~cnnkit.tour.convolution`: classic filters on a photo, output sizes, pooling, the
   convolution as a sparse matrix, translation equivariance measured.
2. :mod:`~cnnkit.tour.network`: a network in compact notation, its summary, trained on digits.
3. :mod:`~cnnkit.tour.architectures`: AlexNet, GoogLeNet and ResNet side by side.
4. :mod:`~cnnkit.tour.visualization`: filters, feature maps, deconvnet and occlusion of stage 2's network.
5. :mod:`~cnnkit.tour.transfer`: the advisor on two targets and each strategy's accuracy.
6. :mod:`~cnnkit.tour.detection`: R-CNN, Fast R-CNN and Faster R-CNN on digit scenes.
7. :mod:`~cnnkit.tour.segmentation`: FCN and Mask R-CNN on generated scenes.
8. :mod:`~cnnkit.tour.style`: style transfer of a sample photo.

    from cnnkit.tour import run_tour
    tour = run_tour("tour", stages=[1, 2], quick=True)    # tour/index.html, tour/tour.json
    [section.error for section in tour.failed]
"""

from cnnkit.tour.section import Section, TourContext
from cnnkit.tour.stages import STAGES, Stage, Tour, parse_stages, run_tour

__all__ = ["STAGES", "Section", "Stage", "Tour", "TourContext", "parse_stages", "run_tour"]
