"""The ``cryprint`` command: a thin shell over the library, one module per group of subcommands.

Each subcommand parses its options, calls one library function, and prints. Errors a user can
fix are :class:`~cryprint.errors.CryprintError`: their message is printed (no traceback) and the
process exits with the error's code (see the README's table of exit codes).
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Sequence

from cryprint import __version__
from cryprint.cli.common import flag_wording
from cryprint.cli.data import add_data
from cryprint.cli.demo import add_demo
from cryprint.cli.evaluation import add_evaluation
from cryprint.cli.gallery import add_gallery
from cryprint.cli.serve import add_serve
from cryprint.cli.training import add_train
from cryprint.cli.verification import add_verification
from cryprint.errors import ConfigError, CryprintError
from cryprint.memory import limit_heap_fragmentation

EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 70
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for `cat` in the same place
# Errors of a path itself (too long, a loop of links, a file used as a folder), not of its content.
BAD_PATH_ERRNOS = frozenset({errno.ENAMETOOLONG, errno.ELOOP, errno.ENOTDIR})


def _silence_stdout() -> None:
    """Point stdout at /dev/null so Python's flush at exit does not fail on the closed pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


class _HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, unless it has none or says it already."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "(default" in text
            or default is None
            or isinstance(default, bool)  # a switch: its help says what it does
            or default == argparse.SUPPRESS
            or not action.option_strings
        ):
            return text
        return f"{text} (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cryprint", description="Infant cry verification: is it the same baby?"
    )
    parser.add_argument("--version", action="version", version=f"cryprint {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    subparsers = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_Parser
    )

    add_data(subparsers)
    add_train(subparsers)
    add_evaluation(subparsers)
    add_verification(subparsers)
    add_gallery(subparsers)
    add_serve(subparsers)
    add_demo(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    arguments = list(sys.argv[1:] if argv is None else argv)
    if any("\0" in value for value in arguments):  # no path can hold one; a shell cannot pass it
        parser.error("a value holds a NUL byte, which no file name or option can")
    args = parser.parse_args(arguments)
    limit_heap_fragmentation()
    try:
        return int(args.handler(args) or 0)
    except (CryprintError, KeyboardInterrupt, BrokenPipeError) as error:
        return _expected_exit(args.command, error)
    except OSError as error:
        if error.errno not in BAD_PATH_ERRNOS or args.debug:
            return _internal_error(args, error)
        # A path from the command line the system cannot even look up: a bad command line.
        print(
            f"cryprint {args.command}: error: {error.filename}: {error.strerror}", file=sys.stderr
        )
        return ConfigError.exit_code
    except Exception as error:
        return _internal_error(args, error)


def _expected_exit(command: str, error: BaseException) -> int:
    if isinstance(error, BrokenPipeError):
        # The reader went away (`cryprint info --json | head`): stop quietly, as cat does.
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    if isinstance(error, KeyboardInterrupt):
        print(f"cryprint {command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    assert isinstance(error, CryprintError)
    print(f"cryprint {command}: error: {error.worded(flag_wording)}", file=sys.stderr)
    return error.exit_code


def _internal_error(args: argparse.Namespace, error: Exception) -> int:
    if args.debug:
        raise error
    print(
        f"cryprint {args.command}: internal error: {type(error).__name__}: {error}\n"
        "(rerun with --debug for the traceback, and please report it)",
        file=sys.stderr,
    )
    return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
