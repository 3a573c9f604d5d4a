"""The ``voxgate`` command line.

Subcommands (``serve``, ``bot``, ``loadtest``) arrive with the issues that
build them; for now the command reports its version and what it is.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from voxgate import __version__

DESCRIPTION = (
    "voxgate bridges telephone calls (SIP/RTP, Twilio and Telnyx media streams) "
    "to AI voice bots over WebSocket."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voxgate", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"voxgate {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    parser.parse_args(argv)
    parser.print_help()
    return 0
