"""One torchrun worker of tests/train/test_distributed.py (not a test module itself).

usage: ddp_worker.py OUT EPOCHS KILL_AT   (KILL_AT > 0: rank 1 SIGKILLs itself at that loss
call in torchrun's first attempt; torchrun --max-restarts then restarts both workers)
"""

import json
import os
import signal
import sys
from pathlib import Path

from cnnkit.train import TrainConfig, train
from cnnkit.train.task import ClassificationTask

out, epochs, kill_at = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rank = int(os.environ["RANK"])
first_attempt = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", 0)) == 0


class RecordingTask(ClassificationTask):
    """Keeps each validation result and the weights it saw; rank 1 may kill itself."""

    calls = 0
    validations = []
    weights = None

    def losses(self, model, x, y):
        RecordingTask.calls += 1
        if kill_at and rank == 1 and first_attempt and RecordingTask.calls == kill_at:
            (out / "killed").write_text(str(kill_at))
            os.kill(os.getpid(), signal.SIGKILL)
        return super().losses(model, x, y)

    def evaluate(self, model, imageset, dataset, config, device):
        result = super().evaluate(model, imageset, dataset, config, device)
        if imageset is dataset.val:
            RecordingTask.validations.append(result["count"])
            RecordingTask.weights = {k: v.clone() for k, v in model.state_dict().items()}
        return result


config = TrainConfig(epochs=epochs, batch_size=64, runs_dir=str(out / "runs"), name="ddp",
                     checkpoint_every_steps=4, checkpoint_every_seconds=0.0)
result = train(config, task=RecordingTask(), progress=False)
import torch  # noqa: E402

torch.save(RecordingTask.weights, out / f"rank{rank}.pt")
(out / f"rank{rank}.json").write_text(json.dumps({"val_counts": RecordingTask.validations,
                                                  "test_count": result.test["count"],
                                                  "steps": result.step, "history": len(result.history)}))
