"""``cryprint train``: its flags are generated from TrainConfig's fields."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from cryprint.training.config import CHOICES

# Extra spellings of generated flags (kept from earlier versions of the command).
TRAIN_FLAG_ALIASES = {"learning_rate": ("--lr",)}


def cmd_train(args: argparse.Namespace) -> int:
    from cryprint.training.config import TrainConfig
    from cryprint.training.runfolder import run_config
    from cryprint.training.trainer import train

    overrides = {field.name: getattr(args, field.name) for field in dataclasses.fields(TrainConfig)}
    config = run_config(overrides, args.config, resume=args.resume)  # --resume needs only --run
    result = train(config, resume=args.resume, quiet=args.quiet)
    last = result.history[-1]
    first = result.history[0]
    print(
        f"trained {config.method} for {last['epoch']} epoch(s): validation EER "
        f"{100 * first['validation_eer']:.2f}% (initial) → {100 * last['validation_eer']:.2f}% "
        f"(last); best model in {result.best}"
    )
    if result.still_learning:
        print(result.still_learning)
    return 0


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field (``--crop-min-seconds`` for ``crop_min_seconds``), its help
    from ``FIELD_HELP`` and its default from the dataclass."""
    import typing

    from cryprint.training.config import FIELD_HELP, TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    defaults = TrainConfig()
    for field in dataclasses.fields(TrainConfig):
        flags = [f"--{field.name.replace('_', '-')}", *TRAIN_FLAG_ALIASES.get(field.name, ())]
        default = getattr(defaults, field.name)
        shown = (
            "" if default in ("", None) or isinstance(default, bool) else f" (default: {default})"
        )
        options: dict = {"dest": field.name, "help": FIELD_HELP[field.name] + shown}
        kind = next(
            (
                t
                for t in (bool, int, float, str)
                if t is hints[field.name] or t in typing.get_args(hints[field.name])
            ),
            str,
        )
        if kind is bool:
            options.update(action="store_true", default=None)
        else:
            options.update(type=kind, choices=CHOICES.get(field.name))
        parser.add_argument(*flags, **options)


def add_train(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="fine-tune ECAPA-TDNN (triplet loss or the AAM-softmax baseline)",
        description="Fine-tune the cry embedder. Options override --config FILE.yaml, which "
        "overrides the defaults (the reference recipe). `--run R --resume` continues run R "
        "with its saved options.",
    )
    parser.add_argument("--config", type=Path, help="a YAML file of training options")
    _add_config_options(parser)
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(handler=cmd_train)
