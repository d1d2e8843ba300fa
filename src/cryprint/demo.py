"""The main job end to end: ``cryprint demo`` (what ``make demo`` runs).

On the synthetic corpus (offline, CPU-sized): generate the corpus, evaluate the untrained
model on dev and test, train, evaluate the trained model, print a before/after table.
With ``full=True`` it runs the real CryCeleb2023 workflow instead: download, fine-tune from
``speechbrain/spkrec-ecapa-voxceleb`` with the reference recipe, evaluate dev/test, submit.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cryprint.data.info import format_summary, summarize
from cryprint.data.synth import MARKER_NAME, generate_corpus
from cryprint.evaluation.calibrate_model import calibrate_model
from cryprint.evaluation.evaluate import evaluate
from cryprint.evaluation.submit import write_submission
from cryprint.inference.options import EmbeddingOptions
from cryprint.models.ecapa import ModelConfig
from cryprint.models.folder import load_model, save_model_folder
from cryprint.recipes import DEMO_EPOCHS, RECIPES
from cryprint.training.config import TrainConfig, make_config
from cryprint.training.trainer import train

# The CPU demo's training recipe: the reference TrainConfig with these overrides. Trained from
# random initialisation (no pretrained weights offline) with a small ECAPA and short crops.
DEMO_TRAINING = TrainConfig(
    init="random",
    channels=64,
    epochs=DEMO_EPOCHS,
    batch_babies=16,
    crops_per_baby=3,
    crop_min_seconds=1.0,
    crop_max_seconds=2.0,
    learning_rate=2e-3,
    # Warm-up then cosine decay over the run's epochs: at equal CPU minutes it reached a lower
    # test EER than the reference's plateau on the hard corpus (benchmarks/RESULTS.md §10).
    schedule="cosine",
    # The validation babies' EER, not the loss: the AAM baseline's validation loss (its train
    # babies' D recordings) rises from epoch 1 as the classifier overfits, while unseen babies
    # keep getting better verified (measured). Dev and test stay untouched by this choice.
    select_by="eer",
    device="cpu",
)


@dataclass(frozen=True)
class DemoSettings:
    """The CPU demo: its corpus, and its training config (``data``, ``run`` and ``seed`` are
    filled in from the corpus). Small enough for ~8 minutes on 2 cores, big enough to learn."""

    out: Path = Path("demo")
    # Many babies with little audio each: generalising to unseen babies needs many identities
    # (measured: 150 babies overfit, 400-500 learn, 1000 learn more), and short recordings keep
    # it fast. Measured on 2 cores: 7 minutes for the whole triplet demo (11 s per epoch).
    babies: int = 1000
    segments_per_recording: tuple[int, int] = (2, 5)
    seed: int = 0
    difficulty: float = 1.0
    training: TrainConfig = DEMO_TRAINING
    tta: int = 1  # test-time augmentation views of every evaluation

    @property
    def method(self) -> str:
        return self.training.method

    def with_recipe(self, name: str) -> DemoSettings:
        """These settings with a :data:`RECIPES` entry applied."""
        recipe = RECIPES[name]
        return dataclasses.replace(self.with_training(**recipe.training), tta=recipe.tta)

    def with_training(self, **changes: Any) -> DemoSettings:
        """These settings with some training options changed (validated like any config)."""
        return dataclasses.replace(
            self, training=make_config({**self.training.to_dict(), **changes})
        )

    def train_config(self, root: Path) -> TrainConfig:
        """The demo's training config for the corpus at ``root``."""
        return dataclasses.replace(
            self.training,
            data=str(root),
            run=str(self.out / "runs" / self.training.method),
            seed=self.seed,
        )


def _ensure_corpus(settings: DemoSettings, say: Any) -> Path:
    root = settings.out / "corpus"
    marker = root / MARKER_NAME
    wanted = {
        "babies": settings.babies,
        "seed": settings.seed,
        "difficulty": settings.difficulty,
        "segments_per_recording": settings.segments_per_recording,
    }
    if marker.is_file():
        recorded = json.loads(marker.read_text())
        arguments = recorded.get("arguments", {})
        same = all(
            arguments.get(key) == (list(value) if isinstance(value, tuple) else value)
            for key, value in wanted.items()
        )
        if same and recorded.get("complete", False):
            say(f"using the synthetic corpus already in {root}")
            return root
    say(f"generating the synthetic corpus in {root} ({settings.babies} babies) ...")
    generate_corpus(root, **wanted, overwrite=True)
    return root


def run_demo(settings: DemoSettings, quiet: bool = False) -> dict[str, Any]:
    """Run the synthetic demo; returns the before/after reports and paths."""

    def say(message: str) -> None:
        if not quiet:
            print(message, flush=True)

    root = _ensure_corpus(settings, say)
    say(format_summary(summarize(root)))
    config = settings.train_config(root)
    run = Path(config.run)
    if run.exists():
        # The demo is rerunnable: a finished earlier demo run is replaced, not resumed.
        shutil.rmtree(run)
    # The untrained model is exactly the random initialisation the training starts from.
    torch.manual_seed(config.seed)
    untrained = save_model_folder(
        load_model("random", ModelConfig.small(config.channels)).model,
        settings.out / "untrained",
        {"trained_by": "nobody", "initial_weights": "random", "seed": config.seed},
    )
    results: dict[str, Any] = {"before": {}, "after": {}}
    embedding = EmbeddingOptions(device=config.device, tta=settings.tta)
    for split in ("dev", "test"):
        say(f"evaluating the untrained model on {split} ...")
        folder = settings.out / "evaluation" / "untrained" / split
        # No cohort for the untrained model: nothing will verify or identify with it.
        [report] = evaluate([untrained], root, split, folder, embedding=embedding, cohort=False)
        results["before"][split] = {**report, "folder": str(folder)}
    say(
        f"training ({config.method}, ECAPA channels {config.channels}, {config.epochs} "
        f"epochs) into {run} ..."
    )
    trained = train(config, quiet=quiet)
    for split in ("dev", "test"):
        say(f"evaluating the trained model on {split} ...")
        folder = settings.out / "evaluation" / settings.method / split
        [report] = evaluate([trained.best], root, split, folder, embedding=embedding)
        results["after"][split] = {**report, "folder": str(folder)}
    # Ready for the ward: the dev evaluation kept the thresholds and the AS-norm cohort; the
    # calibration gives verify and identify their probabilities.
    say("calibrating the trained model on the dev pairs ...")
    calibrate_model(trained.best, root, embedding=embedding)
    results["table"] = before_after_table(results, settings.method)
    results["seconds_per_epoch"] = sum(r["seconds"] for r in trained.history[1:]) / max(
        1, len(trained.history) - 1
    )
    print(results["table"], flush=True)  # the result: printed even when quiet
    return results


def before_after_table(results: dict[str, Any], method: str) -> str:
    """Dev and test EER and minDCF before and after training, with the report/plot paths."""
    lines = [
        f"{'':24}{'dev EER':>9}{'dev minDCF':>12}{'test EER':>10}{'test minDCF':>13}",
    ]
    for stage, label in (("before", "untrained (random init)"), ("after", f"trained ({method})")):
        dev, test = results[stage]["dev"], results[stage]["test"]
        lines.append(
            f"{label:24}{100 * dev['eer']:>8.2f}%{dev['min_dcf']['0.05']:>12.4f}"
            f"{100 * test['eer']:>9.2f}%{test['min_dcf']['0.05']:>13.4f}"
        )
    warning = results["after"]["dev"].get("warning")
    if warning:
        lines.append(f"warning (trained model, dev): {warning}")
    drop = 100 * (results["before"]["dev"]["eer"] - results["after"]["dev"]["eer"])
    lines.append(
        f"dev EER change: {-drop:+.2f} points (minDCF at p_target 0.05, c_miss = c_fa = 1)"
    )
    for stage in ("before", "after"):
        for split in ("dev", "test"):
            folder = results[stage][split]["folder"]
            lines.append(
                f"  {stage:6} {split:4}: {folder}/report.json, score_histogram.png, det_curve.png"
            )
    return "\n".join(lines)


def run_full(
    data: Path, out: Path, quiet: bool = False, recipe: str = "reference"
) -> dict[str, Any]:
    """The real CryCeleb2023 workflow (needs a hub login and a GPU to finish in reasonable
    time): download → train into ``out/runs/cryceleb-RECIPE`` → evaluate dev/test → submit,
    with a :data:`RECIPES` recipe."""
    from cryprint.data.download import download_cryceleb

    chosen = RECIPES[recipe]
    run = Path(out) / "runs" / f"cryceleb-{recipe}"
    download_cryceleb(data, progress=not quiet)
    config = make_config({"data": str(data), "run": str(run), **chosen.training})
    trained = train(config, quiet=quiet)
    embedding = EmbeddingOptions(device="auto", tta=chosen.tta)
    reports = {
        split: evaluate(
            [trained.best], data, split, out / split, as_norm_top_n="auto", embedding=embedding
        )[0]
        for split in ("dev", "test")
    }
    write_submission(trained.best, data, out / "submission.csv", embedding=embedding)
    return reports
