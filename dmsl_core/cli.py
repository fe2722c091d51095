"""The ``dmsl`` command: everything the GUI can do, headless. No Qt here."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Optional, Sequence

from . import __version__
from .commands import COMMAND_MODULES


#: commands that run the pipeline frame by frame: their CPU threads come from dmsl_core/threads.py
#: (``--threads`` where the command has it, else the measured default); ``bench`` sets its own
PIPELINE_COMMANDS = ("run", "predict")


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dmsl", description="DMSL multi-spectral facial landmark detection (visible + thermal).")
    parser.add_argument("--version", action="version", version=f"dmsl {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more (device choice, timings)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # that command group is not built yet
                continue
            raise
        mod.register(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    for stream in (sys.stdout, sys.stderr):   # a file name that is not UTF-8 is printed escaped, never a crash
        if hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors="backslashreplace")
            except (ValueError, OSError):
                pass
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        if args.command in PIPELINE_COMMANDS:
            from .threads import configure
            configure(getattr(args, "threads", None) or None)
        rc = args.func(args)
    except KeyboardInterrupt:
        print("dmsl: interrupted", file=sys.stderr)
        return 130
    except (CLIError, ValueError, OSError, RuntimeError) as exc:
        # the error boundary: bad input and faults of the machine (full disk, read-only folder, a
        # folder where a file is expected...) end in one line naming the file, no traceback
        if args.verbose:
            raise
        print(f"dmsl {args.command}: error: {describe_error(exc)}", file=sys.stderr)
        return 2
    return int(rc or 0)


def describe_error(exc: BaseException) -> str:
    """One line for the user: ``PATH: reason`` for an OSError (its file names), else the text."""
    if isinstance(exc, OSError) and (exc.filename is not None or exc.strerror):
        names = [str(f) for f in (exc.filename, exc.filename2) if f is not None]
        reason = exc.strerror or str(exc)
        line = f"{' -> '.join(names)}: {reason}" if names else reason
    else:
        line = str(exc) or type(exc).__name__
    return " ".join(line.split("\n")).strip()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
