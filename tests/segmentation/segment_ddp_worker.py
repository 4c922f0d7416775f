"""One torchrun worker of test_segmentation_runs.py (not a test module itself): ``cnnkit segment
train ARGS…`` whose task also saves, per rank, the weights of its last validation
(OUT/rankR.pt) and its test figures (OUT/rankR.json).

usage: segment_ddp_worker.py OUT ARGS…
"""

import json
import os
import sys
from pathlib import Path

import torch

from cnnkit.cli.main import main
from cnnkit.segmentation import task as segmentation_task

out, rank = Path(sys.argv[1]), int(os.environ["RANK"])


class RecordingTask(segmentation_task.SegmentationTask):
    def evaluate(self, model, dataset, data, config, device):
        result = super().evaluate(model, dataset, data, config, device)
        if dataset is data.val:
            torch.save(model.state_dict(), out / f"rank{rank}.pt")
        else:
            (out / f"rank{rank}.json").write_text(json.dumps({"mean_iou": result["mean_iou"], "images": result["images"]}))
        return result


segmentation_task.SegmentationConfig.task = lambda self: RecordingTask()
sys.exit(main(["segment", "train", *sys.argv[2:]]))
