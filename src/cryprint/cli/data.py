"""``cryprint download``, ``synth`` and ``info``: getting and describing a data set."""

from __future__ import annotations

import argparse
from pathlib import Path

from cryprint.cli.common import print_json
from cryprint.hub import DATASET_REPO_ID


def cmd_download(args: argparse.Namespace) -> int:
    from cryprint.data.download import download_cryceleb

    report = download_cryceleb(args.dest, repo_id=args.repo, progress=not args.quiet)
    print(report.describe() if hasattr(report, "describe") else report)
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from cryprint.data.info import format_summary, summarize
    from cryprint.data.synth import generate_corpus

    generate_corpus(
        args.dest,
        babies=args.babies,
        seed=args.seed,
        difficulty=args.difficulty,
        overwrite=args.overwrite,
    )
    print(format_summary(summarize(args.dest)))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from cryprint.data.info import format_summary, summarize

    summary = summarize(args.data, check_files=not args.no_check_files)
    if args.json:
        print_json(summary)
    else:
        print(format_summary(summary))
    return 0


def add_data(subparsers: argparse._SubParsersAction) -> None:
    download = subparsers.add_parser(
        "download", help="fetch CryCeleb2023 from the Hugging Face hub"
    )
    download.add_argument("--dest", type=Path, required=True, help="where to put the data set")
    download.add_argument("--repo", default=DATASET_REPO_ID, help="the hub dataset repo")
    download.add_argument("--quiet", action="store_true", help="no progress bars")
    download.set_defaults(handler=cmd_download)

    synth = subparsers.add_parser("synth", help="write a synthetic CryCeleb-format corpus")
    synth.add_argument("--dest", type=Path, required=True, help="the corpus folder to write")
    synth.add_argument("--babies", type=int, default=240, help="babies in all splits (20-5000)")
    synth.add_argument("--seed", type=int, default=0, help="random seed: same seed, same files")
    synth.add_argument(
        "--difficulty", type=float, default=1.0, help="0 easy, 1 default, 2 hard (at most 5)"
    )
    synth.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier synthetic corpus at DEST (only one cryprint wrote)",
    )
    synth.set_defaults(handler=cmd_synth)

    info = subparsers.add_parser("info", help="the split table of a CryCeleb-layout directory")
    info.add_argument("data", type=Path, help="a CryCeleb-layout data directory")
    info.add_argument("--json", action="store_true", help="print the table as JSON")
    info.add_argument("--no-check-files", action="store_true", help="skip checking audio files")
    info.set_defaults(handler=cmd_info)
