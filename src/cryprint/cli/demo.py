"""``cryprint demo``: the main job end to end."""

from __future__ import annotations

import argparse
from pathlib import Path

from cryprint.errors import FIELD, ConfigError
from cryprint.recipes import DEMO_EPOCHS, RECIPES
from cryprint.training.config import METHODS


def cmd_demo(args: argparse.Namespace) -> int:
    from cryprint.demo import DemoSettings, run_demo, run_full

    if args.full:
        if args.data is None:
            raise ConfigError(
                "{full} needs {data} (for CryCeleb2023)", fields={"full": True, "data": FIELD}
            )
        reports = run_full(args.data, args.out, quiet=args.quiet, recipe=args.recipe)
        for split, report in reports.items():
            eer = report["eer"]
            print(f"{split}: EER {100 * eer:.2f}%" if eer is not None else f"{split}: no labels")
        return 0
    settings = DemoSettings(out=args.out).with_recipe(args.recipe).with_training(method=args.method)
    if args.epochs is not None:
        settings = settings.with_training(epochs=args.epochs)
    run_demo(settings, quiet=args.quiet)
    return 0


def add_demo(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser(
        "demo", help="the main job end to end on the synthetic corpus (or --full on CryCeleb2023)"
    )
    demo.add_argument("--out", type=Path, default=Path("demo"), help="where everything goes")
    demo.add_argument(
        "--method",
        choices=METHODS,
        default=METHODS[0],
        help="triplet loss (the main method) or the AAM-softmax baseline",
    )
    demo.add_argument(
        "--epochs", type=int, help=f"training epochs (default: {DEMO_EPOCHS}, the demo's recipe)"
    )
    demo.add_argument(
        "--full",
        action="store_true",
        help="the real workflow: download CryCeleb2023 to --data, fine-tune from "
        "speechbrain/spkrec-ecapa-voxceleb with --recipe, evaluate, submit (the 1st-place "
        "recipe: --full --recipe winners)",
    )
    demo.add_argument("--data", type=Path, help="with --full: the CryCeleb2023 directory")
    demo.add_argument(
        "--recipe",
        choices=sorted(RECIPES),
        default="reference",
        help="; ".join(f"{name}: {recipe.summary}" for name, recipe in RECIPES.items()),
    )
    demo.add_argument("--quiet", action="store_true", help="print only the result table")
    demo.set_defaults(handler=cmd_demo)
