"""One torchrun worker of tests/detection/test_detection_distributed.py (not a test module):
``cnnkit detect train ARGS…`` whose task keeps this process's weights as they are at the last
validation, after the gradient steps and before best.pt is read back for the test.

usage: ddp_detect_worker.py OUT ARGS…
"""

import os
import sys
from pathlib import Path

import torch

from cnnkit.cli.main import main
from cnnkit.detection.task import DetectionConfig, DetectionTask

out, rank = Path(sys.argv[1]), int(os.environ["RANK"])


class RecordingTask(DetectionTask):
    def evaluate(self, model, dataset, data, config, device):
        if dataset is data.val:
            torch.save(model.state_dict(), out / f"rank{rank}.pt")
        return super().evaluate(model, dataset, data, config, device)


DetectionConfig.task = lambda self: RecordingTask()
sys.exit(main(sys.argv[2:]))
