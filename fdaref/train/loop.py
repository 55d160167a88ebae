"""The training loop: any backend, SGD/Adam with a per-step cosine learning rate, SEMANTICS 6 schedules per
epoch, bit-exact resume, Ctrl-C / SIGTERM and divergence handling. What is written into the run directory,
and when, is :mod:`.rundir`'s (checkpoint with the history, metrics.jsonl derived from it, summary.json last);
the divergence policy is :mod:`.divergence`'s.

How a step is computed is the step engine's business (:mod:`.engine`, chosen by ``--engine``): the fdaref
autodiff engine over any op table, or a backend's own (torch autograd). The loop reads the engine's step
statistics every ``engine.sync_every`` steps and at the end of each epoch, so an engine on a GPU runs an
epoch without a host round trip per step; a non-finite loss is caught at the next read, non-finite
parameters or buffers at the end of the epoch, and either stops the run with the last good checkpoint kept.

Determinism: the data order and augmentation of epoch e depend only on (seed, e) (fdaref.data.loader),
the learning rate of step s only on s, and n / alpha only on e. A checkpoint therefore needs the model,
the optimizer and the position (epoch, next batch, the epoch's running sums): resuming from it replays
exactly the computation an uninterrupted run would have done, so both end with identical parameters.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TextIO

import numpy as np

from ..atomic import write_json_atomic
from ..errors import InputError
from ..data import BatchLoader, load_splits
from ..data.dataset import Splits
from ..nn import Module
from ..schedules import cosine_lr
from .checkpoint import FOR_RESUME, check_model_state, load_run_checkpoint, save_checkpoint
from .config import TrainConfig
from .divergence import TrainingDiverged, check_finite_losses, check_finite_state, divergence_message
from .engine import StepEngine
from .factory import build_backend, build_engine
from .interrupt import StopFlag
from .metrics import read_jsonl
from .progress import ProgressBar
from .rundir import CHECKPOINT, METRICS, SUMMARY, check_run_dir, prepare_run_dir, write_metrics
from .summary import run_summary

# Config fields that may differ on --resume without changing the computation's meaning.
RESUME_MAY_CHANGE = ("backend", "device", "data_dir", "out", "engine")


class ResumeError(InputError, RuntimeError):
    """--resume cannot continue (no checkpoint, or a config that contradicts it)."""


@dataclass
class Position:
    """Where training stands: the next batch to run and the running sums of the current epoch."""
    epoch: int = 0
    batch: int = 0
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    train_time: float = 0.0
    lr_first: float | None = None     # the learning rates the optimizer used at this epoch's first and
    lr_last: float | None = None      # latest step (read from it, not recomputed)

    def note_lr(self, lr_used: float) -> None:
        self.lr_first = lr_used if self.lr_first is None else self.lr_first
        self.lr_last = lr_used

    def to_dict(self) -> dict[str, Any]:
        return dict(epoch=self.epoch, batch=self.batch, loss_sum=self.loss_sum, correct=self.correct,
                    seen=self.seen, train_time=self.train_time, lr_first=self.lr_first, lr_last=self.lr_last)


@dataclass
class RunResult:
    status: str                    # "complete" | "interrupted" | "diverged"
    out: Path
    summary: dict[str, Any] = field(default_factory=dict)
    model: Module | None = None
    stop_signal: int | None = None  # the signal that interrupted the run (None: not interrupted by a signal)


class Trainer:
    """One training run of ``config`` writing into ``config.out``.

    ``stop_after_steps`` simulates a Ctrl-C after that many optimizer steps (tests); ``progress`` turns the
    per-epoch progress bar on stderr on or off; ``log`` receives one line per epoch. ``overwrite`` lets a new
    run replace one already in ``config.out`` (otherwise refused; see :mod:`.rundir`).
    """

    def __init__(self, config: TrainConfig, *, progress: bool = True, stream: TextIO | None = None,
                 stop_after_steps: int | None = None, splits: Splits | None = None,
                 log: Callable[[str], None] | None = None, overwrite: bool = False) -> None:
        self.cfg = config.resolved()
        self.stream = stream if stream is not None else sys.stderr
        self.progress = progress
        self.stop_after_steps = stop_after_steps
        self.log = log or (lambda line: print(line, file=self.stream, flush=True))
        self.out = Path(self.cfg.out)
        self.splits = splits
        self.overwrite = overwrite
        self.checkpoint_path = self.out / CHECKPOINT
        self.metrics_path = self.out / METRICS
        self.summary_path = self.out / SUMMARY

    # -- setup --------------------------------------------------------------------------------------
    def _setup(self) -> None:
        cfg = self.cfg
        self.ops = build_backend(cfg)
        if self.splits is None:
            self.splits = load_splits(cfg.dataset, cfg.data_dir, seed=cfg.seed, subset=cfg.subset,
                                      val_fraction=cfg.val_fraction, test_subset=cfg.test_subset)
        s = self.splits
        dtype = np.dtype(cfg.dtype).type
        self.train_loader = BatchLoader(s.train, cfg.batch_size, s.mean, s.std, seed=cfg.seed, shuffle=True,
                                        augment=cfg.augment, drop_last=True, dtype=dtype)
        eval_bs = max(cfg.batch_size, 256)
        self.val_loader = BatchLoader(s.val, eval_bs, s.mean, s.std, dtype=dtype) if len(s.val) else None
        self.test_loader = BatchLoader(s.test, eval_bs, s.mean, s.std, dtype=dtype)
        self.engine: StepEngine = build_engine(cfg, s.info, self.ops, len(self.train_loader) * cfg.epochs)
        # A data-parallel engine runs one Trainer per process; only its writer (rank 0) writes and talks.
        self.writer = bool(getattr(self.engine, "is_writer", True))
        if not self.writer:
            self.progress, self.log = False, lambda line: None
        self.steps_per_epoch = len(self.train_loader)
        self.total_steps = self.steps_per_epoch * cfg.epochs

    def _checkpoint_state(self, pos: Position, history: dict[str, Any]) -> dict[str, Any]:
        s = self.splits
        assert s is not None
        return {
            "config": self.cfg.to_dict(),
            "options": self.cfg.options().to_dict(),
            "data": {"name": s.info.name, "classes": list(s.info.classes), "mean": s.mean, "std": s.std,
                     "train_size": len(s.train), "val_size": len(s.val), "test_size": len(s.test)},
            "position": {**pos.to_dict(), "steps_per_epoch": self.steps_per_epoch},
            "rng": {"scheme": "numpy default_rng([seed, epoch, 0xDA7A]) per epoch; see fdaref.data.loader",
                    "seed": self.cfg.seed, "epoch": pos.epoch, "next_batch": pos.batch},
            "model": self.engine.model_state(),
            "optimizer": self.engine.optimizer_state(),
            "history": history,
        }

    def _save(self, pos: Position, history: dict[str, Any]) -> None:
        if self.writer:
            save_checkpoint(self.checkpoint_path, self._checkpoint_state(pos, history))

    def _restore(self) -> tuple[Position, dict[str, Any]]:
        if not self.checkpoint_path.is_file():
            raise ResumeError(f"--resume: no checkpoint at {self.checkpoint_path} (expected a run directory "
                              "written by `fdaref train --out DIR`)")
        ck = load_run_checkpoint(self.checkpoint_path, FOR_RESUME)
        saved = TrainConfig.from_dict(ck["config"])
        diffs = [f"{k}: checkpoint {getattr(saved, k)!r}, now {getattr(self.cfg, k)!r}"
                 for k in saved.to_dict() if k not in RESUME_MAY_CHANGE and getattr(saved, k) != getattr(self.cfg, k)]
        if diffs:
            raise ResumeError("--resume: the run's settings differ from the checkpoint's (" + "; ".join(diffs) +
                              "); resume with the same settings or start a new --out directory")
        # Non-finite values are left to the divergence guard, which stops the run with its own message.
        check_model_state(self.engine.model_state(), ck["model"], f"{self.checkpoint_path}: model", finite=False)
        try:
            pos = Position(**{k: v for k, v in ck["position"].items() if k != "steps_per_epoch"})
        except TypeError as exc:   # an unknown field: not a position this loop wrote
            raise ResumeError(f"{self.checkpoint_path}: corrupt checkpoint (position: {exc})") from None
        self.engine.load_model_state(ck["model"])
        self.engine.load_optimizer_state(ck["optimizer"])
        history = ck["history"]
        history.setdefault("records", read_jsonl(self.metrics_path)[:pos.epoch])  # a checkpoint from before records
        return pos, history

    # -- the loop -----------------------------------------------------------------------------------
    def run(self, resume: bool = False) -> RunResult:
        cfg = self.cfg
        check_run_dir(self.out, resume=resume, overwrite=self.overwrite)
        if resume:
            self._read_summary()   # a corrupt summary.json is refused before anything is touched
        self._setup()
        if self.writer:
            prepare_run_dir(self.out, overwrite=self.overwrite)
        if resume:
            pos, history = self._restore()
            if self.writer and write_metrics(self.out, history["records"]):
                self.log(f"rewrote {self.metrics_path} from the checkpoint's history")
        else:
            pos, history = Position(), {"best_val": None, "best_epoch": None, "last_good_epoch": None,
                                        "records": []}
        if pos.epoch >= cfg.epochs:
            return self._already_done(history)
        if resume:
            self.log(f"resuming {self.out} at epoch {pos.epoch + 1}/{cfg.epochs}, batch {pos.batch + 1}/"
                     f"{self.steps_per_epoch}")
        wall_start = time.perf_counter()
        engine = self.engine
        with StopFlag() as stop:
            steps_done = 0
            while pos.epoch < cfg.epochs:
                e = pos.epoch
                sched = engine.set_schedule(e, cfg.epochs)
                bar = ProgressBar(self.steps_per_epoch, f"epoch {e + 1}/{cfg.epochs}", stream=self.stream,
                                  enabled=self.progress)
                bar.count = pos.batch
                engine.reset_stats(pos.loss_sum, pos.correct, pos.seen)
                t0 = time.perf_counter()
                for x, y in engine.batches(self.train_loader, e, pos.batch):
                    step = e * self.steps_per_epoch + pos.batch
                    lr = cosine_lr(step, self.total_steps, cfg.lr)
                    self._step(x, y, lr)
                    pos.note_lr(engine.last_lr)   # what the optimizer used, not the schedule recomputed
                    steps_done += 1
                    if self.stop_after_steps is not None and steps_done >= self.stop_after_steps:
                        stop.set()
                    last = pos.batch + 1 == self.steps_per_epoch
                    if steps_done % engine.sync_every == 0 or last or stop:
                        pos.loss_sum, pos.correct, pos.seen = engine.read_stats()
                        problem = check_finite_losses({"loss": pos.loss_sum})
                        if problem is not None:
                            bar.close()
                            return self._diverged(pos, history, problem, lr, pos.batch + 1)
                        bar.update(pos.batch + 1 - bar.count, loss=pos.loss_sum / pos.seen,
                                   acc=f"{100 * pos.correct / pos.seen:.1f}%")
                    pos.batch += 1
                    if stop and pos.batch < self.steps_per_epoch:
                        pos.train_time += time.perf_counter() - t0
                        bar.close()
                        self._guard_finite(pos, history)
                        self._save(pos, history)
                        self.log(f"stopped at epoch {e + 1}, batch {pos.batch}/{self.steps_per_epoch}; saved "
                                 f"{self.checkpoint_path}; continue with --resume --out {self.out}")
                        return RunResult("interrupted", self.out, {}, engine.reference_model(), stop.signum)
                pos.train_time += time.perf_counter() - t0
                bar.close()
                self._guard_finite(pos, history)
                record = self._end_epoch(pos, sched, history)
                history["records"].append(record)
                history["last_good_epoch"] = e
                pos = Position(epoch=e + 1)
                self._save(pos, history)
                if self.writer:
                    write_metrics(self.out, history["records"])
                if stop and pos.epoch < cfg.epochs:
                    self.log(f"stopped after epoch {e + 1}; saved {self.checkpoint_path}; continue with "
                             f"--resume --out {self.out}")
                    return RunResult("interrupted", self.out, {}, engine.reference_model(), stop.signum)
        if not self.writer:
            return RunResult("complete", self.out, {}, engine.reference_model())
        summary = self._summary(history, time.perf_counter() - wall_start)
        write_json_atomic(self.summary_path, summary)
        return RunResult("complete", self.out, summary, engine.reference_model())

    def _already_done(self, history: dict[str, Any]) -> RunResult:
        """--resume of a run whose last checkpoint is final: write the summary if a kill prevented it."""
        summary = self._read_summary()
        note = "nothing to do"
        if summary.get("status") != "complete" and self.writer:
            summary = self._summary(history, 0.0)
            write_json_atomic(self.summary_path, summary)
            note = f"wrote the missing {self.summary_path}"
        self.log(f"{self.out}: all {self.cfg.epochs} epochs already done; {note}")
        return RunResult("complete", self.out, summary, self.engine.reference_model())

    def _step(self, x: Any, y: Any, lr: float) -> None:
        """One optimizer step of the engine on the batch (x, y) at learning rate ``lr``."""
        self.engine.train_step(x, y, lr)

    def _end_epoch(self, pos: Position, sched: dict[str, Any], history: dict[str, Any]) -> dict[str, Any]:
        cfg, e = self.cfg, pos.epoch
        t0 = time.perf_counter()
        due = (e + 1) % cfg.eval_every == 0 or e == cfg.epochs - 1
        val = self.engine.evaluate(self.val_loader) if self.val_loader and due else None
        test = self.engine.evaluate(self.test_loader) if due else None
        eval_time = time.perf_counter() - t0
        problem = check_finite_losses({"validation loss": val.loss if val else None,
                                       "test loss": test.loss if test else None})
        if problem is not None:   # the same policy as a training loss: stop, keep the last good checkpoint
            self._diverged(pos, history, problem, pos.lr_last, None)
        if val is not None and (history["best_val"] is None or val.accuracy > history["best_val"]):
            history["best_val"], history["best_epoch"] = val.accuracy, e
        if test is not None:
            history["test_confusion"] = test.confusion
        last_lr = pos.lr_last
        record = {
            "epoch": e, "epochs": cfg.epochs,
            "train_loss": pos.loss_sum / max(pos.seen, 1), "train_acc": pos.correct / max(pos.seen, 1),
            "val_loss": val.loss if val else None, "val_acc": val.accuracy if val else None,
            "test_loss": test.loss if test else None, "test_acc": test.accuracy if test else None,
            "n": sched.get("n"), "alpha": sched.get("alpha"), "lr": last_lr, "lr_first": pos.lr_first,
            "images_per_s": pos.seen / pos.train_time if pos.train_time > 0 else None,
            "train_time_s": pos.train_time, "eval_time_s": eval_time,
        }
        val_txt = f" val {100 * val.accuracy:.2f}%" if val else ""
        test_txt = f" test {100 * test.accuracy:.2f}%" if test else ""
        n_txt = f" n {record['n']}" if record["n"] is not None else ""
        alpha_txt = f" alpha {record['alpha']:.4f}" if record["alpha"] is not None else ""
        self.log(f"epoch {e + 1}/{cfg.epochs}: loss {record['train_loss']:.4f} train {100 * record['train_acc']:.2f}%"
                 f"{val_txt}{test_txt}{n_txt}{alpha_txt} lr {last_lr:.4g} "
                 f"{record['images_per_s'] or 0:.0f} img/s {pos.train_time:.1f}s")
        return record

    def _guard_finite(self, pos: Position, history: dict[str, Any]) -> None:
        """Stop (TrainingDiverged) before a non-finite model can be evaluated or saved; see :mod:`.divergence`."""
        problem = check_finite_state(self.engine)
        if problem is not None:
            self._diverged(pos, history, problem, pos.lr_last, None)

    def _diverged(self, pos: Position, history: dict[str, Any], what: str, lr: float | None,
                  batch: int | None) -> RunResult:
        message = divergence_message(what, epoch=pos.epoch, epochs=self.cfg.epochs, batch=batch,
                                     steps_per_epoch=self.steps_per_epoch, checked_every=self.engine.sync_every,
                                     lr=lr, last_good_epoch=history.get("last_good_epoch"),
                                     checkpoint=self.checkpoint_path, have_checkpoint=self.checkpoint_path.is_file())
        if self.writer:
            write_json_atomic(self.summary_path, {"status": "diverged", "message": message,
                                                  "config": self.cfg.to_dict()})
        raise TrainingDiverged(message)

    def _summary(self, history: dict[str, Any], wall: float) -> dict[str, Any]:
        assert self.splits is not None
        return run_summary(self.cfg, history, self.splits, self.ops, self.engine.name, self.out, wall)

    def _read_summary(self) -> dict[str, Any]:
        """The run's summary.json ({} when there is none). One that cannot be read is refused (ResumeError),
        not replaced: it may be the only record of a run whose checkpoint is not what it summarised."""
        import json
        if not self.summary_path.exists():
            return {}
        try:
            summary = json.loads(self.summary_path.read_text(encoding="utf-8"))
            problem = "" if isinstance(summary, dict) else f"a JSON {type(summary).__name__}, not an object"
        except (OSError, ValueError) as exc:   # UnicodeDecodeError included
            problem = exc.strerror if isinstance(exc, OSError) and exc.strerror else f"not JSON: {exc}"
        if problem:
            raise ResumeError(f"{self.summary_path}: unreadable summary ({problem}); --resume would replace it. "
                              "Move it away (--resume then writes it again from the checkpoint)")
        return summary


def train(config: TrainConfig, *, resume: bool = False, **kwargs: Any) -> RunResult:
    """Run (or resume) the training of ``config``; see :class:`Trainer`."""
    return Trainer(config, **kwargs).run(resume=resume)
