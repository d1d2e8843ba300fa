"""Benchmark 1: embedding every dev and test recording.

cryprint's path (``embed_split``: each split's audio read once, recordings sorted by length
and batched) against the reference notebooks' path: the model exported to a SpeechBrain folder,
``SpeakerRecognition.from_hparams(...)``, and per (baby, period) the segment files read from
disk, concatenated and passed to ``encode_batch`` one recording at a time. Same weights (a
seeded random initialisation of the chosen architecture; the pretrained weights cannot be
fetched offline and do not change the arithmetic), same data. Also: the model's FLOPs per second
of audio (``torch.utils.flop_counter``) and the fraction of the machine's peak FLOP rate each
path reaches.

    python benchmarks/bench_embedding.py                # the full VoxCeleb ECAPA (C=1024)
    python benchmarks/bench_embedding.py --channels 64  # the CPU demo's ECAPA
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile
import torch

from common import (
    best_of,
    flops_per_audio_second,
    measured_gemm_flops,
    nominal_peak_flops,
    parser,
    setup,
    table,
    timer,
)
from cryprint.data.corpus import Corpus, recordings
from cryprint.inference.splits import embed_split
from cryprint.models.ecapa import CryEmbedder, ModelConfig
from cryprint.models.embed import embed_waveforms
from cryprint.models.folder import save_model_folder
from cryprint.packaging.speechbrain import export_model

SPLITS = ("dev", "test")


def reference_encoder(export: Path, savedir: Path) -> torch.nn.Module:
    """The exported folder loaded the way the reference notebooks load a model."""
    from speechbrain.inference.speaker import SpeakerRecognition

    return SpeakerRecognition.from_hparams(source=str(export), savedir=str(savedir))


def reference_embeddings(root: Path, export: Path, savedir: Path) -> dict[str, np.ndarray]:
    """The reference notebooks' way: per recording, read its files, concatenate, encode."""
    encoder = reference_encoder(export, savedir)
    metadata = pd.read_csv(root / "metadata.csv", dtype={"baby_id": str})
    result = {}
    for split in SPLITS:
        rows = metadata[metadata["split"] == split]
        for (baby_id, period), group in rows.groupby(["baby_id", "period"]):
            group = group.sort_values("chronological_index")
            audio = np.concatenate(
                [soundfile.read(root / name, dtype="float32")[0] for name in group["file_name"]]
            )
            embedding = encoder.encode_batch(torch.from_numpy(audio).unsqueeze(0))
            result[f"{baby_id}{period}"] = embedding.squeeze().cpu().numpy()
    return result


def reference_model_only(export: Path, savedir: Path, waveforms: list[np.ndarray]) -> None:
    encoder = reference_encoder(export, savedir)
    for audio in waveforms:
        encoder.encode_batch(torch.from_numpy(audio).unsqueeze(0))


def main() -> None:
    arguments = parser(__doc__.split("\n\n")[0])
    arguments.add_argument("--channels", type=int, default=1024, help="ECAPA width C")
    arguments.add_argument("--repeats", type=int, default=2, help="best of N for each path")
    args = arguments.parse_args()
    root = setup(args)

    torch.manual_seed(0)
    config = ModelConfig() if args.channels == 1024 else ModelConfig.small(args.channels)
    model = CryEmbedder(config).eval()
    with tempfile.TemporaryDirectory() as temporary:
        folder = save_model_folder(model, Path(temporary) / "model", {"seed": 0})
        export = export_model(folder, Path(temporary) / "export")
        savedir = Path(temporary) / "speechbrain"

        # End to end: from the files on disk to one embedding per recording.
        ours: dict[str, np.ndarray] = {}

        def cryprint_path() -> None:
            for split in SPLITS:
                embedded = embed_split(model, root, split)
                ours.update(zip(embedded.keys, embedded.embeddings, strict=True))

        theirs: dict[str, np.ndarray] = {}

        def reference_path() -> None:
            theirs.update(reference_embeddings(root, export, savedir))

        times: dict[str, float] = {}
        times["cryprint"] = best_of(args.repeats, cryprint_path)
        times["reference"] = best_of(args.repeats, reference_path)

        # The model alone, audio already in memory.
        with timer(times, "read"):
            waveforms = [
                item.waveform()
                for split in SPLITS
                for item in recordings(Corpus(root, splits=(split,)), split)
            ]
        times["cryprint model"] = best_of(args.repeats, lambda: embed_waveforms(model, waveforms))
        times["reference model"] = best_of(
            args.repeats, lambda: reference_model_only(export, savedir, waveforms)
        )

    keys = sorted(ours)
    assert keys == sorted(theirs), "the two paths embedded different recordings"
    left = np.stack([ours[key] for key in keys])
    right = np.stack([theirs[key] for key in keys])
    cosine = (left * right).sum(1) / np.linalg.norm(left, axis=1) / np.linalg.norm(right, axis=1)
    audio_seconds = sum(len(w) for w in waveforms) / 16000
    per_second = flops_per_audio_second(model)
    total_flops = per_second * audio_seconds
    nominal = nominal_peak_flops(args.flops_per_cycle)
    gemm = measured_gemm_flops()

    print(
        f"\n{len(keys)} recordings ({', '.join(SPLITS)}), {audio_seconds / 60:.1f} min of audio; "
        f"ECAPA channels {config.channels}, {sum(p.numel() for p in model.parameters()) / 1e6:.2f} "
        f"M parameters; {per_second / 1e9:.3f} GFLOP per second of audio"
    )
    print(
        f"same embeddings: max |difference| {np.abs(left - right).max():.2e}, "
        f"min cosine {cosine.min():.6f}"
    )
    rows = []
    for label, key, model_key in (
        ("cryprint (embed_split)", "cryprint", "cryprint model"),
        ("reference (encode_batch, one at a time)", "reference", "reference model"),
    ):
        rate = total_flops / times[model_key]
        rows.append(
            [
                label,
                f"{times[key]:.2f}",
                f"{times[model_key]:.2f}",
                f"{audio_seconds / times[key]:.0f}x",
                f"{rate / 1e9:.1f}",
                f"{100 * rate / nominal:.0f} %" if nominal else "n/a",
                f"{100 * rate / gemm:.0f} %",
            ]
        )
    print(
        table(
            [
                "path",
                "end to end (s)",
                "model only (s)",
                "real-time factor",
                "GFLOP/s",
                "of nominal peak",
                "of measured GEMM",
            ],
            rows,
        )
    )
    print(
        f"\nratio reference / cryprint: end to end {times['reference'] / times['cryprint']:.2f}x, "
        f"model only {times['reference model'] / times['cryprint model']:.2f}x"
    )
    nominal_text = f"{nominal / 1e9:.0f} GFLOP/s" if nominal else "unknown"
    print(
        f"peak: nominal {nominal_text} (threads x clock x {args.flops_per_cycle} fp32 FLOP/cycle), "
        f"measured 2048^3 "
        f"GEMM {gemm / 1e9:.0f} GFLOP/s; reading the audio once: {times['read']:.2f} s"
    )


if __name__ == "__main__":
    main()
