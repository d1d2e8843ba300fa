"""The training loop: fine-tune the cry embedder with the triplet method or the AAM baseline.

One function, :func:`train`, runs a whole seeded, resumable run into a run folder. Pieces it
uses are small and separate: data groupings (``cryprint.data``), objectives
(``objectives.py``), checkpoints (``checkpoints.py``), the run folder (``runfolder.py``).

Under ``torchrun`` (``WORLD_SIZE`` > 1) it trains with DistributedDataParallel: each process
draws its own P×K batches, hard triplets are mined across all processes, and process 0 alone
writes the run folder.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from tqdm.auto import tqdm

from cryprint.data.batches import CropBatches, PKSampler
from cryprint.data.corpus import Corpus, Recording, recordings, split_babies, unified_groups
from cryprint.embedding import cosine_matrix, embed_waveforms
from cryprint.errors import ConfigError, DataError
from cryprint.io import atomic_write_text, remove_stale_temporaries
from cryprint.memory import limit_heap_fragmentation
from cryprint.models.ecapa import CryEmbedder, ModelConfig
from cryprint.models.folder import load_model, save_model_folder
from cryprint.scoring.metrics import compute_eer
from cryprint.training import checkpoints
from cryprint.training.config import TrainConfig
from cryprint.training.objectives import (
    DistanceStats,
    build_objective,
    distance_stats,
    is_collapsed,
)
from cryprint.training.runfolder import environment, write_json, write_metrics

logger = logging.getLogger("cryprint.train")

# Options that may change when a run is resumed; anything else must match the saved config.
RESUMABLE_OVERRIDES = ("epochs", "device", "amp", "compile")


@dataclass(frozen=True)
class Distributed:
    """This process's place among the training processes (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def distributed_context() -> Distributed:
    """Read torchrun's environment; start the process group when there are several processes."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed()
    if not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend=backend)
    return Distributed(
        torch.distributed.get_rank(), world_size, int(os.environ.get("LOCAL_RANK", "0"))
    )


def choose_device(name: str, context: Distributed) -> torch.device:
    """``auto``: this process's GPU under torchrun, else the first GPU, else the CPU."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda", context.local_rank % torch.cuda.device_count())
    return torch.device("cpu")


@dataclass
class ValidationSet:
    """Held-out babies: pairs of recordings for the EER, crop batches for the loss."""

    left: list[np.ndarray]
    right: list[np.ndarray]
    loss_batches: CropBatches


def validation_sides(
    groups: dict[str, list[Recording]],
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """For each baby two sides to compare: its B and D recordings where it has both, else its
    even- and odd-numbered segments (different cries of one period). Babies with a single
    segment are left out. Side i of ``left`` and side i of ``right`` are the same baby."""
    left, right = [], []
    for baby_id in sorted(groups):
        by_period = {recording.period: recording for recording in groups[baby_id]}
        if {"B", "D"} <= set(by_period):
            left.append(by_period["B"].waveform())
            right.append(by_period["D"].waveform())
            continue
        only = next(iter(by_period.values()))
        if len(only.segments) >= 2:
            left.append(Recording(baby_id, only.period, only.split, only.segments[0::2]).waveform())
            right.append(
                Recording(baby_id, only.period, only.split, only.segments[1::2]).waveform()
            )
    if len(left) < 2:
        raise DataError("fewer than 2 validation babies with two comparable recordings")
    return left, right


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


def _training_groups(
    config: TrainConfig, groups: dict[str, list[Recording]], train_ids: list[str]
) -> tuple[list[list[Recording]], list[list[Recording]] | None]:
    """The method's training groups (one per label) and, for aam, its loss-validation groups."""
    if config.method == "triplet":
        return [groups[b] for b in train_ids], None
    # The official baseline: babies with both periods, classify on B, validate the loss on D.
    both = [b for b in train_ids if {r.period for r in groups[b]} == {"B", "D"}]
    train = [[r for r in groups[b] if r.period == "B"] for b in both]
    validation = [[r for r in groups[b] if r.period == "D"] for b in both]
    return train, validation


def _setup_logging(run: Path, is_main: bool, quiet: bool) -> None:
    logger.setLevel(logging.INFO)
    logger.handlers.clear()
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


def _resolve_resume(config: TrainConfig, run: Path, resume: bool) -> TrainConfig:
    """On resume, the run's saved config wins; only RESUMABLE_OVERRIDES may differ."""
    saved_path = run / "config.yaml"
    has_checkpoints = (run / "checkpoints" / checkpoints.INDEX_NAME).is_file()
    if not resume:
        if has_checkpoints:
            raise ConfigError(
                f"{run} already holds a training run; pass --resume to continue it "
                "or choose another --run"
            )
        return config
    if not saved_path.is_file():
        return config
    saved = yaml.safe_load(saved_path.read_text(encoding="utf-8"))
    current = config.to_dict()
    # "run" is where the folder is now: a run folder moved or copied elsewhere resumes there.
    changed = [
        key
        for key, value in current.items()
        if key not in (*RESUMABLE_OVERRIDES, "run") and key in saved and saved[key] != value
    ]
    if changed:
        raise ConfigError(
            f"--resume: options differ from the run's saved config ({', '.join(changed)}); "
            f"only {', '.join(RESUMABLE_OVERRIDES)} may change"
        )
    return config


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
    """
    if not config.run or not config.data:
        raise ConfigError("both the data directory and the run folder must be given")
    limit_heap_fragmentation()  # a new crop length every batch: see cryprint.memory
    context = distributed_context()
    device = choose_device(config.device, context)
    run = Path(config.run)
    config = _resolve_resume(config, run, resume)
    if context.is_main:
        (run / "checkpoints").mkdir(parents=True, exist_ok=True)
    if context.world_size > 1:
        torch.distributed.barrier()
    _setup_logging(run, context.is_main, quiet)
    if context.is_main:
        # Temporary files of atomic writes a killed run could not remove (a checkpoint's is as
        # large as the checkpoint): ours alone, named after the files we write.
        for folder, targets in (
            (run, ("environment.json", "config.yaml", "metrics.csv")),
            (run / "checkpoints", ("epoch-*.ckpt", checkpoints.INDEX_NAME)),
            (run / "best", ("*",)),
        ):
            for stale in remove_stale_temporaries(folder, targets):
                logger.info("removed %s, left by an interrupted run", stale)
    show_progress = not quiet and context.is_main and sys.stderr.isatty()

    # --- data -------------------------------------------------------------------------------
    corpus = corpus or Corpus(config.data, splits=("train",), progress=show_progress)
    groups = unified_groups(recordings(corpus, "train"))
    train_ids, validation_ids = split_babies(groups, config.validation_fraction, config.seed)
    train_groups, aam_validation_groups = _training_groups(config, groups, train_ids)
    sampler = PKSampler(
        len(train_groups),
        config.batch_babies,
        config.crops_per_baby,
        config.seed,
        context.rank,
        context.world_size,
    )
    batches = CropBatches(train_groups, sampler, config.crop_min_seconds, config.crop_max_seconds)
    left, right = validation_sides({b: groups[b] for b in validation_ids})
    loss_groups = aam_validation_groups or [groups[b] for b in validation_ids]
    validation_sampler = PKSampler(
        len(loss_groups),
        min(config.batch_babies, len(loss_groups)),
        config.crops_per_baby,
        seed=config.seed + 1,
    )
    validation = ValidationSet(
        left,
        right,
        CropBatches(
            loss_groups, validation_sampler, config.crop_min_seconds, config.crop_max_seconds
        ),
    )

    # --- model and objective -----------------------------------------------------------------
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
    embedder = loaded.model
    options = dict(
        margin=config.margin,
        num_classes=len(train_groups),
        embedding_dim=embedder.config.embedding_dim,
        aam_margin=config.aam_margin,
        aam_scale=config.aam_scale,
    )
    objective = build_objective(config.method, distributed=context.world_size > 1, **options)
    # Validation scores one process's fixed batches: no cross-process mining there.
    validation_objective = (
        objective if config.method == "aam" else build_objective(config.method, **options)
    )
    module = TrainModule(embedder, objective).to(device)
    optimizer = torch.optim.Adam(module.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=config.plateau_factor, patience=config.plateau_patience
    )
    history: list[dict[str, Any]] = []
    start_epoch = 1
    checkpoint_folder = run / "checkpoints"
    if resume:
        found = checkpoints.load_latest(checkpoint_folder)
        if found is None:
            logger.info("--resume: no checkpoint in %s yet; starting from the beginning", run)
        else:
            state, entry = found
            embedder.embedding_model.load_state_dict(state["model"])
            objective.load_state_dict(state["objective"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["torch_rng"])
            history = list(state["history"])
            start_epoch = entry.epoch + 1
            logger.info("resumed from %s (epoch %d)", checkpoint_folder / entry.file, entry.epoch)

    if context.is_main and start_epoch == 1:
        write_json(
            run / "environment.json",
            environment(
                config.seed,
                {
                    "initial_weights": loaded.source,
                    "initial_weights_kind": loaded.kind,
                    "device": str(device),
                    "world_size": context.world_size,
                    "train_babies": len(train_ids),
                    "validation_babies": len(validation_ids),
                },
            ),
        )
        atomic_write_text(run / "config.yaml", config.to_yaml())

    trained: torch.nn.Module = module
    if context.world_size > 1:
        trained = torch.nn.parallel.DistributedDataParallel(
            module, device_ids=[device.index] if device.type == "cuda" else None
        )
    if config.compile and device.type == "cuda":
        trained = torch.compile(trained)
    use_amp = config.amp and device.type == "cuda"

    def evaluate() -> tuple[float, float]:
        """(validation loss, validation EER) of the current weights."""
        embeddings = embed_waveforms(embedder, validation.left + validation.right, device)
        count = len(validation.left)
        scores = cosine_matrix(embeddings[:count], embeddings[count:])
        eer = compute_eer(scores.ravel(), np.eye(count, dtype=int).ravel()).eer
        losses = []
        with torch.no_grad():
            embedder.eval()
            for index, batch in enumerate(validation.loss_batches.epoch(0)):
                if index >= config.validation_batches:
                    break
                output = embedder(batch.waveforms.to(device), batch.lengths.to(device))
                losses.append(float(validation_objective(output.float(), batch.labels.to(device))))
            embedder.train()
        return float(np.mean(losses)), float(eer)

    if not history:
        started = time.perf_counter()
        validation_loss, validation_eer = evaluate()
        history.append(
            _row(
                0,
                math.nan,
                validation_loss,
                validation_eer,
                math.nan,
                math.nan,
                config.lr,
                time.perf_counter() - started,
                False,
            )
        )
        logger.info(
            "epoch 0 (initial weights): validation loss %.4f, EER %.2f%%",
            validation_loss,
            100 * validation_eer,
        )

    for epoch in range(start_epoch, config.epochs + 1):
        started = time.perf_counter()
        module.train()
        losses, positives, negatives = [], [], []
        crops = 0
        for batch in tqdm(
            batches.epoch(epoch),
            total=len(batches),
            desc=f"epoch {epoch}",
            disable=not show_progress,
            leave=False,
            unit="batch",
        ):
            labels = batch.labels.to(device)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
                loss, embeddings = trained(
                    batch.waveforms.to(device), batch.lengths.to(device), labels
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            stats = distance_stats(embeddings.detach(), labels)
            losses.append(float(loss.detach()) / context.world_size)
            positives.append(stats.positive)
            negatives.append(stats.negative)
            crops += len(labels) * context.world_size
        train_seconds = time.perf_counter() - started
        if context.world_size > 1:
            # DDP keeps parameters equal, but each process updates its BatchNorm statistics
            # from its own batches: take process 0's, so every process validates the same
            # model and the scheduler makes the same decision everywhere.
            for buffer in module.buffers():
                torch.distributed.broadcast(buffer, src=0)
        validation_loss, validation_eer = evaluate()
        learning_rate = optimizer.param_groups[0]["lr"]
        scheduler.step(validation_loss)
        positive, negative = float(np.nanmean(positives)), float(np.nanmean(negatives))
        collapsed = is_collapsed(DistanceStats(positive, negative))
        history.append(
            _row(
                epoch,
                float(np.mean(losses)),
                validation_loss,
                validation_eer,
                positive,
                negative,
                learning_rate,
                time.perf_counter() - started,
                collapsed,
                train_seconds,
                crops,
            )
        )
        logger.info(
            "epoch %d/%d: train loss %.4f, validation loss %.4f, EER %.2f%%, distances +%.3f/-%.3f,"
            " lr %.2g, %.1f s",
            epoch,
            config.epochs,
            history[-1]["train_loss"],
            validation_loss,
            100 * validation_eer,
            positive,
            negative,
            learning_rate,
            history[-1]["seconds"],
        )
        if collapsed:
            logger.warning(
                "epoch %d: embeddings collapsed (mean positive %.4f and negative %.4f distances "
                "near 0; the loss sits at the margin). Lower the learning rate or check the data.",
                epoch,
                positive,
                negative,
            )
        if context.is_main:
            state = {
                "model": embedder.embedding_model.state_dict(),
                "objective": objective.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "history": history,
                "config": config.to_dict(),
            }
            # best/ before the checkpoint: a run killed in between redoes this epoch on --resume
            # (bit for bit) and writes best/ again. In the other order it would resume after
            # this epoch and best/ would never get its weights.
            if checkpoints.is_new_best(
                checkpoint_folder, epoch, validation_loss, validation_eer, config.select_by
            ):
                save_model_folder(
                    embedder, run / "best", _best_info(config, loaded.source, history[-1])
                )
            checkpoints.save_checkpoint(
                checkpoint_folder, epoch, state, validation_loss, validation_eer
            )
            checkpoints.prune_checkpoints(checkpoint_folder, config.keep_best, config.select_by)
            write_metrics(run / "metrics.csv", history)
        if context.world_size > 1:
            torch.distributed.barrier()

    if context.is_main:
        write_metrics(run / "metrics.csv", history)
        if not (run / "best").is_dir():
            # Resumed past the last epoch without a best folder (e.g. an older run): write one.
            save_model_folder(
                embedder, run / "best", _best_info(config, loaded.source, history[-1])
            )
    return TrainResult(run, run / "best", history, embedder)


def _row(
    epoch: int,
    train_loss: float,
    validation_loss: float,
    validation_eer: float,
    positive: float,
    negative: float,
    learning_rate: float,
    seconds: float,
    collapsed: bool,
    train_seconds: float = math.nan,
    crops: int = 0,
) -> dict[str, Any]:
    """One metrics.csv row. ``seconds``: the whole epoch with validation; ``train_seconds``:
    the training batches alone, over which ``crops_per_second`` (all processes) is measured."""
    return {
        "epoch": epoch,
        "train_loss": train_loss,
        "validation_loss": validation_loss,
        "validation_eer": validation_eer,
        "positive_distance": positive,
        "negative_distance": negative,
        "learning_rate": learning_rate,
        "seconds": seconds,
        "train_seconds": train_seconds,
        "crops_per_second": crops / train_seconds if crops else math.nan,
        "collapsed": collapsed,
    }


def _best_info(config: TrainConfig, source: str, row: dict[str, Any]) -> dict[str, Any]:
    return {
        "trained_by": "cryprint",
        "method": config.method,
        "initial_weights": source,
        "epoch": row["epoch"],
        "validation_loss": row["validation_loss"],
        "validation_eer": row["validation_eer"],
        "run": str(Path(config.run).resolve()),
    }
