"""The training loop: fine-tune the cry embedder with the triplet method or the AAM baseline.

:func:`train` runs a whole seeded, resumable run into a locked run folder. It hands each stage
to a small function: building the data (:func:`build_training_data`), the model and objective
(:func:`build_model`), restoring a checkpoint (:func:`restore`), one epoch
(:func:`cryprint.training.epoch.train_one_epoch`), validation
(:mod:`cryprint.training.validation`) and saving an epoch (:func:`save_epoch`).

Under ``torchrun`` (``WORLD_SIZE`` > 1) it trains with DistributedDataParallel: each process
draws its own P×K batches, hard triplets are mined across all processes, and process 0 alone
writes the run folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cryprint.data.corpus import (
    Corpus,
)
from cryprint.errors import ConfigError, CryprintError
from cryprint.io import atomic_write_text, check_not_locked, folder_lock
from cryprint.memory import limit_heap_fragmentation
from cryprint.models.device import resolve_device
from cryprint.models.ecapa import CryEmbedder, ModelConfig
from cryprint.models.folder import LoadedModel, load_model, load_weights, save_model_folder
from cryprint.threads import apply_to_torch
from cryprint.training import checkpoints
from cryprint.training.config import TrainConfig
from cryprint.training.distributed import Distributed, barrier, distributed_context
from cryprint.training.epoch import EpochMetrics, EpochTraining, train_one_epoch
from cryprint.training.learning_curve import format_duration, seconds_left, still_learning
from cryprint.training.objectives import (
    DistanceStats,
    ObjectiveOptions,
    build_objective,
    is_collapsed,
)
from cryprint.training.runfolder import (
    check_new_or_resumed,
    check_same_run,
    environment,
    remove_interrupted_writes,
    write_json,
    write_metrics,
)
from cryprint.training.schedule import Scheduler, build_scheduler, step_scheduler
from cryprint.training.training_set import TrainingData, build_training_data, training_splits
from cryprint.training.validation import (
    validation_eer,
    validation_loss,
)

logger = logging.getLogger("cryprint.train")


class TrainModule(torch.nn.Module):
    """Embedder + objective in one module, so DDP sees every trained parameter in one forward."""

    def __init__(self, embedder: CryEmbedder, objective: torch.nn.Module) -> None:
        super().__init__()
        self.embedder = embedder
        self.objective = objective

    def forward(
        self, waveforms: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        embeddings = self.embedder(waveforms, lengths)
        return self.objective(embeddings.float(), labels), embeddings


@dataclass
class TrainResult:
    """The run folder, its best model folder, the per-epoch metrics and the final model."""

    run: Path
    best: Path
    history: list[dict[str, Any]]
    model: CryEmbedder
    still_learning: str | None = None  # the note when the curve was still falling at the end


@dataclass
class TrainingState:
    """Everything an epoch changes, and what a checkpoint saves and restores."""

    loaded: LoadedModel
    module: TrainModule
    validation_objective: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Scheduler
    history: list[dict[str, Any]] = field(default_factory=list)
    start_epoch: int = 1

    @property
    def embedder(self) -> CryEmbedder:
        return self.module.embedder

    @property
    def objective(self) -> torch.nn.Module:
        return self.module.objective


def build_model(
    config: TrainConfig, num_classes: int, device: torch.device, context: Distributed
) -> TrainingState:
    """The initial embedder (seeded), the objective, the optimiser and the learning-rate
    schedule (:mod:`cryprint.training.schedule`)."""
    torch.manual_seed(config.seed)
    architecture = ModelConfig.small(config.channels) if config.channels else None
    loaded = load_model(config.init, architecture)
    if loaded.kind == "random":
        logger.warning("initial weights: RANDOM (no pretrained model) — --init random")
    else:
        logger.info("initial weights: %s (%s)", loaded.source, loaded.kind)
    if architecture is not None and loaded.model.config != architecture:
        logger.warning(
            "--channels %s ignored: %s brings its own architecture %s",
            config.channels,
            loaded.source,
            loaded.model.config.channels,
        )
    options = ObjectiveOptions(
        num_classes=num_classes,
        embedding_dim=loaded.model.config.embedding_dim,
        margin=config.margin,
        aam_margin=config.aam_margin,
        aam_scale=config.aam_scale,
        distributed=context.world_size > 1,
    )
    objective = build_objective(config.method, options)
    # Validation scores one process's fixed batches: no cross-process mining there.
    validation_objective = (
        objective
        if config.method == "aam" or context.world_size == 1
        else build_objective(config.method, dataclasses.replace(options, distributed=False))
    )
    module = TrainModule(loaded.model, objective).to(device)
    optimizer = torch.optim.Adam(module.parameters(), lr=config.lr)
    scheduler = build_scheduler(optimizer, config)
    return TrainingState(loaded, module, validation_objective, optimizer, scheduler)


def restore(state: TrainingState, run: Path, config: TrainConfig) -> None:
    """Load the run's newest good checkpoint into ``state`` (nothing when there is none)."""
    found = checkpoints.load_latest(run / "checkpoints")
    if found is None:
        logger.info("--resume: no checkpoint in %s yet; starting from the beginning", run)
        return
    saved, entry = found
    check_same_run(config, saved.get("config"), f"checkpoint {entry.file}")
    load_weights(state.embedder.embedding_model, saved["model"], f"checkpoint {entry.file}")
    state.objective.load_state_dict(saved["objective"])
    state.optimizer.load_state_dict(saved["optimizer"])
    state.scheduler.load_state_dict(saved["scheduler"])
    torch.set_rng_state(saved["torch_rng"])
    state.history = list(saved["history"])
    state.start_epoch = entry.epoch + 1
    logger.info("resumed from %s (epoch %d)", run / "checkpoints" / entry.file, entry.epoch)


def save_epoch(state: TrainingState, run: Path, config: TrainConfig, metrics: EpochMetrics) -> None:
    """Write best/ (when this epoch is the new best), the checkpoint, pruning and metrics.csv."""
    folder = run / "checkpoints"
    saved = {
        "model": state.embedder.embedding_model.state_dict(),
        "objective": state.objective.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "history": state.history,
        "config": config.to_dict(),
    }
    loss, eer = metrics.validation_loss, metrics.validation_eer
    # best/ before the checkpoint: a run killed in between redoes this epoch on --resume (bit for
    # bit) and writes best/ again. In the other order it would resume after this epoch and best/
    # would never get its weights.
    if checkpoints.is_new_best(folder, metrics.epoch, loss, eer, config.select_by):
        save_model_folder(
            state.embedder, run / "best", _best_info(config, state.loaded.source, metrics)
        )
    checkpoints.save_checkpoint(folder, metrics.epoch, saved, loss, eer)
    checkpoints.prune_checkpoints(folder, config.keep_best, config.select_by)
    write_metrics(run / "metrics.csv", state.history)


def _validate(
    state: TrainingState, data: TrainingData, device: torch.device
) -> tuple[float, float]:
    """(validation loss, validation EER) of the current weights."""
    eer = validation_eer(state.embedder, data.validation, device)
    loss = validation_loss(state.embedder, state.validation_objective, data.validation, device)
    return loss, eer


def _initial_metrics(state: TrainingState, data: TrainingData, device: torch.device) -> None:
    """Epoch 0: the initial weights' validation numbers, the baseline every epoch is seen by."""
    started = time.perf_counter()
    loss, eer = _validate(state, data, device)
    row = EpochMetrics(
        0, math.nan, loss, eer, math.nan, math.nan, state.optimizer.param_groups[0]["lr"],
        time.perf_counter() - started,
    )  # fmt: skip
    state.history.append(row.to_row())
    logger.info("epoch 0 (initial weights): validation loss %.4f, EER %.2f%%", loss, 100 * eer)


def _epoch_metrics(
    state: TrainingState, data: TrainingData, device: torch.device, epoch: int,
    trained: EpochTraining, started: float,
) -> EpochMetrics:  # fmt: skip
    loss, eer = _validate(state, data, device)
    learning_rate = state.optimizer.param_groups[0]["lr"]
    step_scheduler(state.scheduler, loss)
    positive, negative = trained.positive_distance, trained.negative_distance
    return EpochMetrics(
        epoch, trained.loss, loss, eer, positive, negative, learning_rate,
        time.perf_counter() - started, trained.seconds, trained.crops_per_second,
        is_collapsed(DistanceStats(positive, negative)),
    )  # fmt: skip


def _log_epoch(metrics: EpochMetrics, epochs: int, left: float | None) -> None:
    logger.info(
        "epoch %d/%d: train loss %.4f, validation loss %.4f, EER %.2f%%, distances +%.3f/-%.3f,"
        " lr %.2g, %.1f s%s",
        metrics.epoch,
        epochs,
        metrics.train_loss,
        metrics.validation_loss,
        100 * metrics.validation_eer,
        metrics.positive_distance,
        metrics.negative_distance,
        metrics.learning_rate,
        metrics.seconds,
        f", about {format_duration(left)} left" if left and metrics.epoch < epochs else "",
    )
    if metrics.collapsed:
        logger.warning(
            "epoch %d: embeddings collapsed (mean positive %.4f and negative %.4f distances "
            "near 0; the loss sits at the margin). Lower the learning rate or check the data.",
            metrics.epoch,
            metrics.positive_distance,
            metrics.negative_distance,
        )


def _wrap_for_training(
    state: TrainingState, config: TrainConfig, device: torch.device, context: Distributed
) -> torch.nn.Module:
    trained: torch.nn.Module = state.module
    if context.world_size > 1:
        trained = torch.nn.parallel.DistributedDataParallel(
            state.module, device_ids=[device.index] if device.type == "cuda" else None
        )
    if config.compile and device.type == "cuda":
        trained = torch.compile(trained)
    return trained


def _sync_batchnorm_statistics(state: TrainingState, context: Distributed) -> None:
    # DDP keeps parameters equal, but each process updates its BatchNorm statistics from its own
    # batches: take process 0's, so every process validates the same model and the scheduler
    # makes the same decision everywhere.
    if context.world_size > 1:
        for buffer in state.module.buffers():
            torch.distributed.broadcast(buffer, src=0)


def _run_epochs(
    state: TrainingState, data: TrainingData, config: TrainConfig, run: Path,
    device: torch.device, context: Distributed, progress: bool,
) -> None:  # fmt: skip
    trained = _wrap_for_training(state, config, device, context)
    for epoch in range(state.start_epoch, config.epochs + 1):
        started = time.perf_counter()
        training = train_one_epoch(
            trained,
            data.batches,
            epoch,
            state.optimizer,
            device,
            use_amp=config.amp and device.type == "cuda",
            loss_scale=state.objective.loss_scale,
            world_size=context.world_size,
            progress=progress,
        )
        _sync_batchnorm_statistics(state, context)
        metrics = _epoch_metrics(state, data, device, epoch, training, started)
        state.history.append(metrics.to_row())
        _log_epoch(metrics, config.epochs, seconds_left(state.history, config.epochs))
        if context.is_main:
            save_epoch(state, run, config, metrics)
        barrier(context)


def train(
    config: TrainConfig, resume: bool = False, quiet: bool = False, corpus: Corpus | None = None
) -> TrainResult:
    """Run (or resume) a training run into ``config.run``.

    Args:
        config: the validated run config.
        resume: continue from the run's last good checkpoint.
        quiet: no progress bars and only warnings on the console.
        corpus: an already loaded corpus of ``config.data`` (else it is read).

    Returns:
        The run folder, its ``best/`` model folder and the per-epoch metrics.

    Raises:
        ConfigError: bad options, a run folder that already holds another run (without
            ``resume``), or options that differ from the run being resumed.
        OutputError: the run folder cannot be written, or another process is training into it.
    """
    if not config.run or not config.data:
        raise ConfigError("both the data directory and the run folder must be given")
    limit_heap_fragmentation()  # a new crop length every batch: see cryprint.memory
    context = distributed_context()
    if context.world_size == 1:  # under torchrun, its OMP_NUM_THREADS share the cores
        apply_to_torch()
    device = resolve_device(config.device, context.local_rank)
    run = Path(config.run)
    # Refusals come at once, before the data is read (and again under the lock, where they count).
    if context.is_main:
        check_not_locked(run, "cryprint train")
    check_new_or_resumed(config, run, resume)
    # The data is read before the run folder is made: a wrong --data leaves nothing behind.
    progress = _shows_progress(quiet, context)
    corpus = corpus or Corpus(config.data, splits=training_splits(config), progress=progress)
    lock = folder_lock(run, "cryprint train") if context.is_main else contextlib.nullcontext()
    with lock as created:  # whether this call made the run folder (None on other ranks)
        return _train_locked(config, run, resume, quiet, corpus, context, device, bool(created))


def _shows_progress(quiet: bool, context: Distributed) -> bool:
    return not quiet and context.is_main and sys.stderr.isatty()


def _start(
    config: TrainConfig, run: Path, resume: bool, quiet: bool, corpus: Corpus,
    context: Distributed, device: torch.device,
) -> tuple[TrainingData, TrainingState]:  # fmt: skip
    """Everything before the first epoch: the run folder, its log, the data, the model (restored
    when resuming) and the run's description."""
    check_new_or_resumed(config, run, resume)
    if context.is_main:
        (run / "checkpoints").mkdir(parents=True, exist_ok=True)
    barrier(context)
    _setup_logging(run, context.is_main, quiet)
    if context.is_main:
        for stale in remove_interrupted_writes(run):
            logger.info("removed %s, left by an interrupted run", stale)
    data = build_training_data(config, corpus, context, device)
    state = build_model(config, data.num_classes, device, context)
    if resume:
        restore(state, run, config)
    if context.is_main and state.start_epoch == 1:
        _write_run_description(state, data, config, run, device, context)
    return data, state


def _remove_failed_start(run: Path) -> None:
    """Remove the run folder this call made, when it failed before its first epoch (a model
    that cannot be loaded, a full disk, a bad option found late): nothing in it is a run yet."""
    _close_log_files()
    shutil.rmtree(run, ignore_errors=True)


def _close_log_files() -> None:
    """Detach and close the handlers of an earlier run (its ``train.log`` stays open else)."""
    for log in (logger, logging.getLogger(checkpoints.__name__)):
        for handler in log.handlers:
            handler.close()
        log.handlers.clear()


def _train_locked(
    config: TrainConfig, run: Path, resume: bool, quiet: bool, corpus: Corpus,
    context: Distributed, device: torch.device, new_folder: bool,
) -> TrainResult:  # fmt: skip
    try:
        data, state = _start(config, run, resume, quiet, corpus, context, device)
    except CryprintError:
        if new_folder and context.is_main:
            _remove_failed_start(run)
        raise
    if not state.history:
        _initial_metrics(state, data, device)
    _run_epochs(state, data, config, run, device, context, _shows_progress(quiet, context))
    if context.is_main:
        write_metrics(run / "metrics.csv", state.history)
        if not (run / "best").is_dir():
            # Resumed past the last epoch without a best folder (e.g. an older run): write one.
            last = EpochMetrics(**state.history[-1])
            save_model_folder(
                state.embedder, run / "best", _best_info(config, state.loaded.source, last)
            )
    note = still_learning(state.history)
    if note and context.is_main:
        logger.warning("%s", note)
    return TrainResult(run, run / "best", state.history, state.embedder, note)


def _write_run_description(
    state: TrainingState, data: TrainingData, config: TrainConfig, run: Path,
    device: torch.device, context: Distributed,
) -> None:  # fmt: skip
    extra = {
        "initial_weights": state.loaded.source,
        "initial_weights_kind": state.loaded.kind,
        "device": str(device),
        "world_size": context.world_size,
        "train_babies": data.train_babies,
        "validation_babies": data.validation_babies,
        "train_on": config.train_on,
        "dev_babies_trained_on": data.dev_babies,
        "dev_recordings_trained_on": data.dev_recordings,
        # The settings in force, the preset or block resolved.
        "augmentation": data.augmentation.to_dict() if data.augmentation else None,
    }
    write_json(run / "environment.json", environment(config.seed, extra))
    atomic_write_text(run / "config.yaml", config.to_yaml())


def _setup_logging(run: Path, is_main: bool, quiet: bool) -> None:
    logger.setLevel(logging.INFO)
    _close_log_files()
    logger.propagate = False
    if not is_main:
        return
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.WARNING if quiet else logging.INFO)
    console.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(console)
    file = logging.FileHandler(run / "train.log", encoding="utf-8")
    file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(file)
    checkpoint_logger = logging.getLogger(checkpoints.__name__)
    checkpoint_logger.handlers = [console, file]
    checkpoint_logger.propagate = False


def _best_info(config: TrainConfig, source: str, metrics: EpochMetrics) -> dict[str, Any]:
    return {
        "trained_by": "cryprint",
        "method": config.method,
        "initial_weights": source,
        # What the weights saw: evaluate warns on dev when dev recordings were trained on.
        "train_on": config.train_on,
        "augment": config.augment,
        "epoch": metrics.epoch,
        "validation_loss": metrics.validation_loss,
        "validation_eer": metrics.validation_eer,
        "run": str(Path(config.run).resolve()),
    }
