"""``cryprint verify`` and ``calibrate``: one trial's verdict, and the calibration behind it."""

from __future__ import annotations

import argparse
from pathlib import Path

from cryprint.cli.common import (
    MODEL_HELP,
    add_embedding_options,
    embedding_options,
    print_json,
)


def cmd_calibrate(args: argparse.Namespace) -> int:
    from cryprint.evaluation.calibrate_model import calibrate_model

    result = calibrate_model(
        args.model,
        args.data,
        args.split,
        progress=True,
        embedding=embedding_options(args),
    )
    calibration = result.calibration
    offset = f"{'-' if calibration.b < 0 else '+'} {abs(calibration.b):.4g}"
    print(
        f"calibration P(same) = sigmoid({calibration.a:.4g} * score {offset}) "
        f"at a prior of {calibration.prior:.3g}, fitted on {result.n_pairs} {result.split} "
        f"pairs ({result.n_target} same-baby); saved to {result.path}"
    )
    if result.plot is not None:
        print(f"reliability plot (predicted P vs observed same-baby rate): {result.plot}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from cryprint.inference.api import verify

    result = verify(
        args.model,
        args.a,
        args.b,
        threshold=args.threshold,
        prior=args.prior,
        point=args.operating_point,
        inconclusive=args.inconclusive,
        embedding=embedding_options(args),
    )
    if args.json:
        from cryprint.data.inputs import recording_files

        used = {
            side: [str(f) for f in recording_files(p)] for side, p in (("a", args.a), ("b", args.b))
        }
        print_json({**result.to_dict(), "files": used})
        return 0
    for line in result.explain():
        print(line)
    return 0


def add_verification(subparsers: argparse._SubParsersAction) -> None:
    calibrate = subparsers.add_parser(
        "calibrate",
        help="fit score → P(same baby) on the dev pairs; saved in the model folder",
        description="Writes calibration.json and calibration_reliability.png (predicted P "
        "against the observed same-baby rate) into the model folder.",
    )
    calibrate.add_argument("--model", required=True, help="a local model folder")
    calibrate.add_argument("--data", type=Path, required=True, help="a CryCeleb-layout directory")
    calibrate.add_argument(
        "--split", choices=["dev", "test"], default="dev", help="the labelled pairs to fit on"
    )
    add_embedding_options(calibrate)
    calibrate.set_defaults(handler=cmd_calibrate)

    verify = subparsers.add_parser(
        "verify",
        help="are two recordings of the same baby?",
        description="A and B are audio files (any rate, any channels) or folders of cry "
        "segments (their audio files, sorted by name, joined). The verdict is taken at one "
        "operating point: --threshold, --prior or --operating-point (default: the dev EER "
        "threshold). With the model's calibration it gives P(same baby) at that point's prior, "
        "at least 0.5 exactly when the score reaches the threshold.",
    )
    verify.add_argument("a", type=Path, help="audio file or folder of segments")
    verify.add_argument("b", type=Path, help="audio file or folder of segments")
    verify.add_argument("--model", required=True, help=MODEL_HELP)
    point = verify.add_mutually_exclusive_group()
    point.add_argument(
        "--threshold",
        type=float,
        help="same baby when score >= this (the prior behind P is then the one it implies)",
    )
    point.add_argument(
        "--prior",
        "--target-rate",
        dest="prior",
        type=float,
        help="P(same baby) before listening, in (0, 1): the threshold is where P = 0.5 at it "
        "(needs cryprint calibrate)",
    )
    point.add_argument(
        "--operating-point",
        choices=["eer", "far1"],
        help="a threshold stored by cryprint evaluate --split dev: eer (the default) or far1 "
        "(1 %% of different-baby pairs accepted)",
    )
    verify.add_argument(
        "--inconclusive",
        type=float,
        metavar="Q",
        help="say 'inconclusive' when P(same baby) is between Q and 1 - Q, e.g. 0.2 "
        "(needs cryprint calibrate)",
    )
    verify.add_argument("--json", action="store_true", help="every field of the verdict")
    add_embedding_options(verify)
    verify.set_defaults(handler=cmd_verify)
