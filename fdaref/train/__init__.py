"""Training: the loop (:mod:`.loop`), its config (:mod:`.config`), checkpoints, metrics, evaluation,
a progress bar and plots. ``fdaref train`` / ``evaluate`` / ``demo`` / ``ablation`` / ``plot`` use these."""
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import MODELS, OPTIMIZERS, TrainConfig
from .evaluation import EvalResult, LoadedRun, evaluate, load_trained, test_loader
from .factory import build_backend, build_model, build_optimizer
from .divergence import TrainingDiverged
from .loop import ResumeError, RunResult, Trainer, train
from .rundir import CHECKPOINT, METRICS, SUMMARY, RunDirError, fresh_run_dir
from .metrics import confusion_matrix, format_confusion, read_jsonl
from .progress import ProgressBar

__all__ = ["CHECKPOINT", "METRICS", "SUMMARY", "MODELS", "OPTIMIZERS", "CheckpointError", "EvalResult", "LoadedRun",
           "ProgressBar", "ResumeError", "RunDirError", "RunResult", "TrainConfig", "Trainer", "TrainingDiverged", "build_backend",
           "build_model", "build_optimizer", "confusion_matrix", "evaluate", "format_confusion", "fresh_run_dir", "load_checkpoint",
           "load_trained", "read_jsonl", "save_checkpoint", "test_loader", "train"]
