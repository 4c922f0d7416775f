"""The training engine: loop, evaluation, metrics, checkpoints with exact resume, run folders,
progress and data-parallel training. Task-agnostic: a task supplies its model, loss and
evaluation (`ClassificationTask` for image classification).

    from cnnkit.train import TrainConfig, train, resume, load_trained
    result = train(TrainConfig(model="sample_net", data="digits"))   # runs/sample_net-digits/
    result.test["top1"]                                               # ≈ 0.98
    trained = load_trained(result.run_dir)                            # model, classes, mean, std
"""

from cnnkit.train.checkpoint import load_checkpoint
from cnnkit.train.config import TrainConfig
from cnnkit.train.engine import RunResult, TrainingError, resume, train
from cnnkit.train.metrics import confusion_matrix, evaluate, per_class_accuracy, topk_correct
from cnnkit.train.task import ClassificationTask
from cnnkit.train.trained import TrainedModel, load_trained

__all__ = [
    "ClassificationTask",
    "RunResult",
    "TrainConfig",
    "TrainedModel",
    "TrainingError",
    "confusion_matrix",
    "evaluate",
    "load_checkpoint",
    "load_trained",
    "per_class_accuracy",
    "resume",
    "topk_correct",
    "train",
]
