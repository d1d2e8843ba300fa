"""``cryprint verify`` and ``calibrate``: one trial's verdict, and the calibration behind it."""

from __future__ import annotations

import argparse
from pathlib import Path

from cryprint.cli.common import DEVICE_HELP, MODEL_HELP, print_json, progress


def cmd_calibrate(args: argparse.Namespace) -> int:
    from cryprint.evaluation.calibrate import calibrate_model

    result = calibrate_model(
        args.model, args.data, args.split, device=args.device, progress=progress()
    )
    print(
        f"calibration P(same) = sigmoid({result.calibration.a:.4g} * score + "
        f"{result.calibration.b:.4g}) fitted on {result.n_pairs} {result.split} pairs "
        f"({result.n_target} same-baby); saved to {result.path}"
    )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from cryprint.evaluation.verify import verify

    result = verify(args.model, args.a, args.b, threshold=args.threshold, device=args.device)
    if args.json:
        print_json(result.to_dict())
        return 0
    verdict = "same baby" if result.same_baby else "different babies"
    print(f"{verdict}: score {result.score:.4f} vs threshold {result.threshold:.4f}")
    print(f"threshold: {result.threshold_source}")
    if result.probability is not None:
        print(f"P(same baby) = {result.probability:.3f} (calibrated on the dev pairs)")
    return 0


def add_verification(subparsers: argparse._SubParsersAction) -> None:
    calibrate = subparsers.add_parser(
        "calibrate",
        help="fit score → P(same baby) on the dev pairs; saved in the model folder",
    )
    calibrate.add_argument("--model", required=True, help="a local model folder")
    calibrate.add_argument("--data", type=Path, required=True, help="a CryCeleb-layout directory")
    calibrate.add_argument(
        "--split", choices=["dev", "test"], default="dev", help="the labelled pairs to fit on"
    )
    calibrate.add_argument("--device", default="auto", help=DEVICE_HELP)
    calibrate.set_defaults(handler=cmd_calibrate)

    verify = subparsers.add_parser(
        "verify",
        help="are two recordings of the same baby?",
        description="A and B are audio files (any rate, any channels) or folders of cry "
        "segments (their audio files, sorted by name, joined).",
    )
    verify.add_argument("a", type=Path, help="audio file or folder of segments")
    verify.add_argument("b", type=Path, help="audio file or folder of segments")
    verify.add_argument("--model", required=True, help=MODEL_HELP)
    verify.add_argument(
        "--threshold",
        type=float,
        help="same baby when score >= this (default: the model folder's dev EER threshold)",
    )
    verify.add_argument("--json", action="store_true", help="print the verdict as JSON")
    verify.add_argument("--device", default="cpu", help="cpu (default), auto, cuda, cuda:N")
    verify.set_defaults(handler=cmd_verify)
