"""Benchmark 2: training throughput in crops per second.

cryprint's training loop (``cryprint.training.train``: audio loaded once, P x K batches cut
from memory, the ``crops_per_second`` it writes to metrics.csv over the training batches alone)
against a plain loop like the reference notebook's: a ``Dataset`` over the metadata rows that
looks each item up with ``df.iloc`` and reads its file from disk, pytorch-metric-learning's
``MPerClassSampler``, a ``DataLoader`` without workers, then the same model, loss, miner and
optimizer. Same architecture, same P, K and crop length, same training babies.

    python benchmarks/bench_training.py                    # the CPU demo's ECAPA (C=64)
    python benchmarks/bench_training.py --channels 1024    # the full VoxCeleb ECAPA (slow on CPU)
"""

from __future__ import annotations

import itertools
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile
import torch
from pytorch_metric_learning import distances, losses, miners, samplers

from common import parser, setup, table
from cryprint.data.batches import CropBatches, PKSampler
from cryprint.data.corpus import Corpus, recordings, unified_groups
from cryprint.models.ecapa import CryEmbedder, ModelConfig
from cryprint.training.config import make_config
from cryprint.training.trainer import train


class ReferenceCryDataset(torch.utils.data.Dataset):
    """One item per metadata row: read the file, take a random crop (zero-padded if short)."""

    def __init__(self, root: Path, rows: pd.DataFrame, samples: int) -> None:
        self.root = root
        self.rows = rows.reset_index(drop=True)
        self.labels = pd.factorize(self.rows["baby_id"])[0]
        self.samples = samples

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        row = self.rows.iloc[index]
        audio, _ = soundfile.read(self.root / row["file_name"], dtype="float32")
        if len(audio) > self.samples:
            start = np.random.randint(0, len(audio) - self.samples + 1)
            audio = audio[start : start + self.samples]
        else:
            audio = np.pad(audio, (0, self.samples - len(audio)))
        return torch.from_numpy(audio), int(self.labels[index])


def reference_loader(
    root: Path, batch_babies: int, per_baby: int, seconds: float, steps: int
) -> torch.utils.data.DataLoader:
    metadata = pd.read_csv(root / "metadata.csv", dtype={"baby_id": str})
    dataset = ReferenceCryDataset(
        root, metadata[metadata["split"] == "train"], int(seconds * 16000)
    )
    batch_size = batch_babies * per_baby
    sampler = samplers.MPerClassSampler(
        dataset.labels,
        m=per_baby,
        batch_size=batch_size,
        length_before_new_iter=(steps + 1) * batch_size,
    )
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=0
    )


def reference_loop(
    root: Path, config: ModelConfig, batch_babies: int, per_baby: int, seconds: float, steps: int
) -> float:
    """Crops per second of ``steps`` optimisation steps of the plain loop (after one warm-up)."""
    loader = reference_loader(root, batch_babies, per_baby, seconds, steps)
    torch.manual_seed(0)
    model = CryEmbedder(config).train()
    distance = distances.LpDistance(normalize_embeddings=True, p=2)
    loss_function = losses.TripletMarginLoss(margin=1.0, distance=distance)
    miner = miners.BatchHardMiner(distance=distance)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    started, crops = None, 0
    for step, (waveforms, labels) in enumerate(loader):
        if step == 1:  # the first step warms up allocators and kernels
            started, crops = time.perf_counter(), 0
        embeddings = model(waveforms, torch.ones(len(waveforms)))
        loss = loss_function(embeddings, labels, miner(embeddings, labels))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        crops += len(labels)
    assert started is not None, "need at least 2 steps"
    return crops / (time.perf_counter() - started)


def data_only(
    root: Path, batch_babies: int, per_baby: int, seconds: float, steps: int
) -> tuple[float, float]:
    """Crops per second of each loop's batches alone, no model: (cryprint, reference).

    This is the ceiling the data side puts on training where the model step is fast (a GPU).
    """
    corpus = Corpus(root, splits=("train",))
    groups = list(unified_groups(recordings(corpus, "train")).values())
    batches = CropBatches(
        groups, PKSampler(len(groups), batch_babies, per_baby, seed=0), seconds, seconds
    )
    every_epoch = (batch for epoch in itertools.count() for batch in batches.epoch(epoch))
    crops, started = 0, time.perf_counter()
    for batch in itertools.islice(every_epoch, steps):
        crops += len(batch.labels)
    ours = crops / (time.perf_counter() - started)
    crops, started = 0, time.perf_counter()
    loader = reference_loader(root, batch_babies, per_baby, seconds, steps)
    for _, labels in itertools.islice(loader, steps):
        crops += len(labels)
    return ours, crops / (time.perf_counter() - started)


def cryprint_loop(
    root: Path, channels: int, batch_babies: int, per_baby: int, seconds: float, epochs: int
) -> tuple[float, int, float]:
    """(crops per second over epochs 2.., batches per epoch, seconds loading the corpus)."""
    with tempfile.TemporaryDirectory() as run:
        config = make_config(
            {
                "data": str(root),
                "run": run,
                "init": "random",
                "channels": channels,
                "epochs": epochs,
                "batch_babies": batch_babies,
                "crops_per_baby": per_baby,
                "crop_min_seconds": seconds,
                "crop_max_seconds": seconds,
                "device": "cpu",
            }
        )
        started = time.perf_counter()
        corpus = Corpus(root, splits=("train",))
        loading = time.perf_counter() - started
        history = train(config, quiet=True, corpus=corpus).history
    trained = [row for row in history if row["epoch"] >= 2]  # epoch 1 warms up
    crops = sum(row["crops_per_second"] * row["train_seconds"] for row in trained)
    batches = round(history[1]["crops_per_second"] * history[1]["train_seconds"]) // (
        batch_babies * per_baby
    )
    return crops / sum(row["train_seconds"] for row in trained), batches, loading


def main() -> None:
    arguments = parser(__doc__.split("\n\n")[0])
    arguments.add_argument("--channels", type=int, default=64, help="ECAPA width C")
    arguments.add_argument("--batch-babies", type=int, default=16, help="P")
    arguments.add_argument("--crops-per-baby", type=int, default=3, help="K")
    arguments.add_argument("--crop-seconds", type=float, default=3.0)
    arguments.add_argument("--epochs", type=int, default=3, help="cryprint epochs (first: warm-up)")
    args = arguments.parse_args()
    root = setup(args)
    config = ModelConfig() if args.channels == 1024 else ModelConfig.small(args.channels)
    shape = (args.batch_babies, args.crops_per_baby, args.crop_seconds)
    ours, batches, loading = cryprint_loop(root, args.channels, *shape, args.epochs)
    steps = batches * (args.epochs - 1)
    theirs = reference_loop(root, config, *shape, steps=steps)
    data_ours, data_theirs = data_only(root, *shape, steps=100)
    print(
        f"\nECAPA channels {config.channels}; P={args.batch_babies} babies x "
        f"K={args.crops_per_baby} crops of {args.crop_seconds:g} s per batch; "
        f"{steps} timed steps each (cryprint: epochs 2-{args.epochs} of {batches} batches)"
    )
    print(
        table(
            ["loop", "crops/s, training", "crops/s, batches alone", "one-off set-up"],
            [
                [
                    "cryprint (train)",
                    f"{ours:.1f}",
                    f"{data_ours:,.0f}",
                    f"{loading:.1f} s reading the train audio",
                ],
                [
                    "reference (Dataset + df.iloc + file read per item, no workers)",
                    f"{theirs:.1f}",
                    f"{data_theirs:,.0f}",
                    "none",
                ],
            ],
        )
    )
    print(
        f"\nratio cryprint / reference: training {ours / theirs:.2f}x, "
        f"batches alone {data_ours / data_theirs:.1f}x (100 batches each)"
    )


if __name__ == "__main__":
    main()
