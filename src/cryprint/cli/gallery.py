"""``cryprint enroll``, ``identify`` and ``gallery list|remove``: a ward's gallery of babies."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from cryprint.cli.common import (
    MODEL_HELP,
    add_embedding_options,
    embedding_options,
    print_json,
)
from cryprint.errors import FIELD, ConfigError
from cryprint.inference.operating_point import STORED_POINTS
from cryprint.scoring.open_set import DEFAULT_ENROLLED_PRIOR, WardRule

GALLERY_HELP = "the gallery: one SQLite file (created by the first enroll)"
# How many of the audit log's last changes `gallery list` shows (--json: all of them).
AUDIT_LINES = 10


def cmd_enroll(args: argparse.Namespace) -> int:
    from cryprint.ward.batch import enrol_ward, read_ward_list
    from cryprint.ward.gallery_file import escaped

    if (args.list is None) == (args.baby is None) or (args.list is not None and args.recordings):
        raise ConfigError(
            "give {baby} and its recordings, or {list} (a CSV of baby,path rows)",
            fields={"baby": FIELD, "list": FIELD},
        )
    if args.list is None and not args.recordings:
        raise ConfigError("give at least one recording (audio file or folder) to enrol")
    babies = read_ward_list(args.list) if args.list else {args.baby: args.recordings}
    results = enrol_ward(
        args.model, args.gallery, babies, embedding=embedding_options(args), progress=True
    )
    where = escaped(str(args.gallery))
    if args.list is not None:  # a ward: one line, not one per baby
        added = sum(result.added for result in results)
        print(f"enrolled {added} recording(s) of {len(results)} babies in {where}")
    for result in results:
        if args.list is None:
            print(
                f"enrolled {result.added} recording(s) for baby {result.baby_id} in "
                f"{where} ({result.n_enrolments} enrolment(s) in all)"
            )
        for source in result.skipped:
            print(f"skipped {escaped(source)}: already enrolled for {result.baby_id}")
    return 0


def cmd_identify(args: argparse.Namespace) -> int:
    from cryprint.ward.batch import identify_cries, read_cry_list
    from cryprint.ward.identify import WardQuestion

    question = WardQuestion(
        threshold=args.threshold,
        max_false_alarm=args.max_false_alarm,
        point=args.operating_point,
        prior=args.prior,
        enrolled_prior=args.enrolled_prior,
        baby_priors=dict(args.baby_prior or []),
        rule=WardRule(args.min_probability, args.review_level),
        top=args.top,
    )
    cries = [*args.cries, *(read_cry_list(args.list) if args.list else [])]
    if not cries:
        raise ConfigError("give a cry (a file or folder) or {list}", fields={"list": FIELD})
    results = identify_cries(
        args.model, args.gallery, cries, question, embedding=embedding_options(args)
    )
    if args.json:
        answers = [{"cry": str(cry), **r.to_dict()} for cry, r in zip(cries, results, strict=True)]
        print_json(answers[0] if len(cries) == 1 else answers)
        return 0
    explained = [result.explain() for result in results]
    shared = _shared_tail(explained) if len(cries) > 1 else []
    for index, (cry, lines) in enumerate(zip(cries, explained, strict=True)):
        if len(cries) > 1:
            if index:
                print()
            print(f"== {cry}")
        for line in lines[: len(lines) - len(shared)]:
            print(line)
    if shared:  # the rule, prior and sources every answer shares: once, after them all
        print("\nfor every cry:")
        for line in shared:
            print(line)
    return 0


def _shared_tail(explained: list[list[str]]) -> list[str]:
    """The last lines that every answer's explanation ends with (never its answer or table)."""
    tail: list[str] = []
    for lines in zip(*(reversed(lines[2:]) for lines in explained), strict=False):
        if len(set(lines)) != 1 or lines[0].startswith(" "):
            break
        tail.insert(0, lines[0])
    return tail


def cmd_gallery_list(args: argparse.Namespace) -> int:
    from cryprint.ward.gallery import Gallery

    with Gallery.open(args.gallery) as gallery:
        babies = gallery.babies()
        records = gallery.enrolment_records()
        meta = gallery.meta
        audit = gallery.audit_log(None if args.json else AUDIT_LINES)
    enrolled: dict[str, list] = {}
    for record in records:
        enrolled.setdefault(record.baby_id, []).append(record)
    if args.json:  # JSON escapes every control character itself
        payload = {"gallery": str(args.gallery), **meta}
        payload["babies"] = [
            {**baby._asdict(), "enrolments": [r._asdict() for r in enrolled.get(baby.baby_id, [])]}
            for baby in babies
        ]
        payload["audit"] = [change._asdict() for change in audit]
        print_json(payload)
        return 0
    for line in _gallery_lines(args.gallery, meta, babies, enrolled, audit):
        print(line)
    return 0


def _gallery_lines(
    path: Path, meta: dict[str, str], babies: list, enrolled: dict[str, list], audit: list
) -> list[str]:
    """``gallery list`` in words: the gallery, each baby with its enrolments, then the last
    changes (oldest first). Everything read from the file is shown escaped: a file edited by
    hand must not send escape sequences to the terminal (baby ids are checked on read)."""
    from cryprint.ward.gallery_file import escaped

    made_with = escaped(meta.get("model_source") or "unknown source")
    how = f" ({escaped(meta['embedding'])})" if meta.get("embedding") else ""
    lines = [
        f"{escaped(str(path))}: {len(babies)} babies, model {escaped(meta['model_id'][:12])} "
        f"({made_with}), {escaped(meta['dim'])}-d embeddings{how}"
    ]
    for baby in babies:
        lines.append(
            f"{baby.baby_id:<20} {baby.n_enrolments:>4} enrolment(s)  since {escaped(baby.created)}"
        )
        lines += [
            f"    {escaped(record.created)}  {escaped(record.source)}"
            for record in enrolled.get(baby.baby_id, [])
        ]
    if not audit:
        return [*lines, "audit: no change recorded yet"]
    lines.append(f"audit: the last {len(audit)} change(s), oldest first")
    lines += [
        f"    {change.time}  {change.action:<6}  {change.baby_id:<20} "
        f"{change.recordings:>4} recording(s)  by {change.client}"
        for change in reversed(audit)
    ]
    return lines


def cmd_gallery_remove(args: argparse.Namespace) -> int:
    from cryprint.ward.gallery import Gallery
    from cryprint.ward.gallery_file import escaped

    with Gallery.open(args.gallery) as gallery:
        removed = gallery.remove(args.baby)
    print(
        f"removed baby {escaped(args.baby)} and its {removed} enrolment(s) from "
        f"{escaped(str(args.gallery))}"
    )
    return 0


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gallery", type=Path, required=True, help=GALLERY_HELP)
    parser.add_argument("--model", required=True, help=MODEL_HELP)
    add_embedding_options(parser)  # identify must embed cries as enroll embedded recordings


def _baby_prior(text: str) -> tuple[str, float]:
    baby, separator, weight = text.rpartition("=")
    try:
        value = float(weight)
    except ValueError:
        value = -1.0
    if not separator or not baby or not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not BABY=WEIGHT (a weight >= 0)")
    return baby, value


def _add_rule_options(parser: argparse.ArgumentParser) -> None:
    """identify's rule: the probability rule's levels and prior, or one score rule."""
    rule = WardRule()
    parser.add_argument(
        "--min-probability", type=float, default=rule.min_probability,
        help="name a baby only at this probability or more",
    )  # fmt: skip
    parser.add_argument(
        "--review-level", type=float, default=rule.review_level,
        help="two babies at this probability or more: a close call to review, never a name",
    )  # fmt: skip
    parser.add_argument(
        "--enrolled-prior", type=float, default=DEFAULT_ENROLLED_PRIOR,
        help="P(the crying baby is enrolled) before listening; spread evenly over the babies",
    )  # fmt: skip
    parser.add_argument(
        "--baby-prior", action="append", type=_baby_prior, metavar="BABY=WEIGHT",
        help="a baby's share of the enrolled prior, relative to 1 for the others (repeatable)",
    )  # fmt: skip
    score = parser.add_mutually_exclusive_group()
    score.add_argument(
        "--max-false-alarm", type=float, metavar="F",
        help="decide by score: a baby not enrolled is named at most F of the time for this "
        "gallery's size (from the dev different-baby scores)",
    )  # fmt: skip
    score.add_argument("--threshold", type=float, help="decide by score: named at score >= this")
    score.add_argument(
        "--operating-point", choices=sorted(STORED_POINTS),
        help="decide by score at a threshold evaluate --split dev stored (as verify does)",
    )  # fmt: skip
    score.add_argument(
        "--prior", type=float,
        help="decide by score at the threshold where P(same baby) = 0.5 at this pairwise prior",
    )  # fmt: skip


def add_gallery(subparsers: argparse._SubParsersAction) -> None:
    enroll = subparsers.add_parser(
        "enroll",
        help="enrol recordings of one baby into a gallery (several enrolments per baby allowed)",
        description="Each PATH is one recording: an audio file, or a folder of cry segments "
        "(its audio files, sorted by name, joined). All are enrolled in one transaction.",
    )
    _add_model_options(enroll)
    enroll.add_argument("--baby", help="the baby's id (1-64 printable characters)")
    enroll.add_argument("recordings", nargs="*", type=Path, metavar="PATH", help="file or folder")
    enroll.add_argument(
        "--list",
        type=Path,
        metavar="CSV",
        help="enrol a whole ward: a CSV of baby,path rows (paths relative to it), instead of "
        "--baby and PATH; the model loads once, each baby is its own transaction",
    )
    enroll.set_defaults(handler=cmd_enroll)

    identify = subparsers.add_parser(
        "identify",
        help="which enrolled baby is crying? probabilities over the ward, or none of these",
        description="Scores the cry against every enrolled baby. With the model's calibration "
        "(cryprint calibrate) each baby and 'none of these' get a probability (they sum to 1) "
        "and the answer is: the baby at --min-probability; 'review' when two babies reach "
        "--review-level; else none of these when that is most probable; else uncertain. A "
        "score rule decides instead with --max-false-alarm, --threshold, --operating-point or "
        "--prior (without a calibration: --max-false-alarm 0.05).",
    )
    _add_model_options(identify)
    identify.add_argument(
        "cries", nargs="*", type=Path, metavar="CRY", help="audio files or folders of segments"
    )
    identify.add_argument(
        "--list", type=Path, metavar="FILE", help="cries to identify: one path per line"
    )
    identify.add_argument("--top", type=int, default=5, help="candidates to show")
    _add_rule_options(identify)
    identify.add_argument("--json", action="store_true", help="print the result as JSON")
    identify.set_defaults(handler=cmd_identify)

    gallery = subparsers.add_parser("gallery", help="list or remove the babies of a gallery")
    # type(gallery): the nested parsers show defaults in their help as the top-level ones do.
    actions = gallery.add_subparsers(
        dest="action",
        metavar="ACTION",
        required=True,
        parser_class=type(gallery),
        help="list: the enrolled babies and the last changes; remove: a baby and its enrolments",
    )
    listing = actions.add_parser(
        "list",
        help=f"the enrolled babies, then the last {AUDIT_LINES} changes (--json: all of them)",
    )
    listing.add_argument("--gallery", type=Path, required=True, help=GALLERY_HELP)
    listing.add_argument("--json", action="store_true", help="print the list as JSON")
    listing.set_defaults(handler=cmd_gallery_list)
    remove = actions.add_parser("remove", help="remove a baby and all its enrolments")
    remove.add_argument("--gallery", type=Path, required=True, help=GALLERY_HELP)
    remove.add_argument("--baby", required=True, help="the baby's id")
    remove.set_defaults(handler=cmd_gallery_remove)
