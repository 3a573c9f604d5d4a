"""The receptionist's options: where calls go, when the business is open, how long to wait.

Each option is also the environment variable ``RECEPTIONIST_BOT_<OPTION>`` (the SDK's
runner reads it: ``RECEPTIONIST_BOT_SALES``, ``RECEPTIONIST_BOT_NO_INPUT``...). Every value
is checked when the bot starts, so a typo fails ``voxgate bot receptionist`` with a
usage error rather than a call later on.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from voxgate.bots.receptionist.hours import BusinessHours, parse_hours
from voxgate.bots.sdk.runner import transfer_target

MIN_SECONDS: Final = 0.1


@dataclass(frozen=True, slots=True)
class Settings:
    """The options one call uses, typed (``Settings.of(call.options)``)."""

    sales: str
    support: str
    operator: str
    voicemail_dir: Path
    hours: BusinessHours
    timezone: ZoneInfo
    no_input: float
    max_message: float
    silence: float

    @classmethod
    def of(cls, options: argparse.Namespace) -> Settings:
        """The settings in ``options``; the defaults for those it lacks."""
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        defaults = parser.parse_args([])
        return cls(
            **{
                field.name: getattr(options, field.name, getattr(defaults, field.name))
                for field in fields(cls)
            }
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The receptionist's options (values reach each call as ``call.options``)."""
    group = parser.add_argument_group("receptionist")
    for key, department, target in (
        ("1", "sales", "+15550100001"),
        ("2", "support", "+15550100002"),
        ("0", "operator", "+15550100000"),
    ):
        group.add_argument(
            f"--{department}",
            type=transfer_target,
            default=target,
            metavar="TARGET",
            help=f"where key {key} transfers the caller: +E.164 or a sip:/sips: URI",
        )
    group.add_argument(
        "--voicemail-dir",
        type=Path,
        default=Path("voicemail"),
        metavar="DIR",
        help="where messages go, a WAV and a JSON record each (made if missing)",
    )
    group.add_argument(
        "--hours",
        type=business_hours,
        default="always",
        help="when the menu is offered; otherwise the caller can only leave a message. "
        "'always', 'never', or rules 'DAYS HH:MM-HH:MM[,HH:MM-HH:MM...]' separated by ';', "
        "DAYS like mon-fri, sat or mon,wed,fri; ends are excluded, 24:00 ends a day, "
        "e.g. 'mon-fri 09:00-12:00,13:00-17:00; sat 10:00-14:00'",
    )
    group.add_argument(
        "--timezone",
        type=timezone,
        default="UTC",
        metavar="ZONE",
        help="the IANA time zone of --hours, like Europe/Paris",
    )
    group.add_argument(
        "--no-input",
        type=seconds,
        default=8.0,
        metavar="SECONDS",
        help="how long to wait for a key once the menu has played",
    )
    group.add_argument(
        "--max-message", type=seconds, default=60.0, metavar="SECONDS", help="the longest message"
    )
    group.add_argument(
        "--silence",
        type=seconds,
        default=2.0,
        metavar="SECONDS",
        help="the silence after speech that ends a message",
    )


def business_hours(text: str) -> BusinessHours:
    try:
        return parse_hours(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"bad business hours {text!r}: {error}") from None


def timezone(text: str) -> ZoneInfo:
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise argparse.ArgumentTypeError(
            f"unknown time zone {text!r}: use an IANA name like UTC or Europe/Paris"
        ) from None


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= MIN_SECONDS):
        raise argparse.ArgumentTypeError(
            f"must be a number of seconds, at least {MIN_SECONDS}, not {text!r}"
        )
    return value
