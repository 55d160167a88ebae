"""Training: the loop (:mod:`.loop`), its config (:mod:`.config`), checkpoints, metrics, evaluation,
a progress bar and plots. ``fdaref train`` / ``evaluate`` / ``demo`` / ``ablation`` / ``plot`` use these."""
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import MODELS, OPTIMIZERS, TrainConfig
from .evaluation import EvalResult, LoadedRun, evaluate, load_trained, test_loader
from .factory import build_backend, build_model, build_optimizer
from .loop import CHECKPOINT, METRICS, SUMMARY, ResumeError, RunResult, Trainer, TrainingDiverged, train
from .metrics import confusion_matrix, format_confusion, read_jsonl
from .progress import ProgressBar

__all__ = ["CHECKPOINT", "METRICS", "SUMMARY", "MODELS", "OPTIMIZERS", "CheckpointError", "EvalResult", "LoadedRun",
           "ProgressBar", "ResumeError", "RunResult", "TrainConfig", "Trainer", "TrainingDiverged", "build_backend",
           "build_model", "build_optimizer", "confusion_matrix", "evaluate", "format_confusion", "load_checkpoint",
           "load_trained", "read_jsonl", "save_checkpoint", "test_loader", "train"]
