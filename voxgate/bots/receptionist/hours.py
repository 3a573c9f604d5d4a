"""Business hours: when the receptionist offers the menu, and when it only takes messages.

The ``--hours`` grammar (case does not matter; spaces around ``,`` ``;`` ``-`` neither)::

    hours    = "always" | "never" | rule *( ";" rule )
    rule     = days " " times                  mon-fri 09:00-12:00,13:00-17:00
    days     = day-span *( "," day-span )      mon-fri   sat   mon,wed,fri   fri-mon
    day-span = day [ "-" day ]                 day: mon tue wed thu fri sat sun
    times    = range *( "," range )
    range    = HH:MM "-" HH:MM                 from 00:00 to 24:00, start before end

A range holds its start and not its end: ``09:00-17:00`` is open at 09:00 and closed
at 17:00. A day span may wrap around the week (``fri-mon``); a time range does not wrap
around midnight: write a night as ``fri 22:00-24:00; sat 00:00-06:00``. Times are read
on the wall clock of the datetime given to :meth:`BusinessHours.is_open` (the bot gives
the time in ``--timezone``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Final

DAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY: Final = 24 * 60
EXAMPLE: Final = "mon-fri 09:00-17:00"
_TIME: Final = re.compile(r"([0-9]{2}):([0-9]{2})")


@dataclass(frozen=True, slots=True)
class Opening:
    """Open on ``weekday`` (0 is Monday) from minute ``start`` of the day to before ``end``."""

    weekday: int
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class BusinessHours:
    """When the business is open: the parsed ``--hours`` (its text kept for messages)."""

    text: str
    openings: tuple[Opening, ...]

    def is_open(self, moment: datetime) -> bool:
        """Whether ``moment``'s weekday and wall-clock time fall in an opening."""
        minute = moment.hour * 60 + moment.minute
        return any(
            o.weekday == moment.weekday() and o.start <= minute < o.end for o in self.openings
        )

    def __str__(self) -> str:
        return self.text


def parse_hours(text: str) -> BusinessHours:
    """The business hours ``text`` describes; ValueError saying what is wrong otherwise."""
    spec = re.sub(r"\s*([,;-])\s*", r"\1", " ".join(text.lower().split()))
    if spec == "always":
        return BusinessHours(spec, tuple(Opening(day, 0, MINUTES_PER_DAY) for day in range(7)))
    if spec == "never":
        return BusinessHours(spec, ())
    if not spec:
        raise ValueError(f"no business hours given: use 'always', 'never' or e.g. {EXAMPLE!r}")
    openings = tuple(opening for rule in spec.split(";") for opening in _rule(rule))
    return BusinessHours(text.strip(), openings)


def _rule(rule: str) -> list[Opening]:
    days, _, times = rule.partition(" ")
    if not days or not times or " " in times:
        raise ValueError(f"{rule!r} is not days then times, like {EXAMPLE!r}")
    ranges = [_range(part) for part in times.split(",")]
    return [Opening(day, start, end) for day in _days(days) for start, end in ranges]


def _days(text: str) -> list[int]:
    weekdays: list[int] = []
    for span in text.split(","):
        first, dash, last = span.partition("-")
        start = _day(first)
        end = _day(last) if dash else start
        weekdays.extend((start + offset) % 7 for offset in range((end - start) % 7 + 1))
    return weekdays


def _day(text: str) -> int:
    if text not in DAYS:
        raise ValueError(f"{text!r} is not a day: use {', '.join(DAYS)}")
    return DAYS.index(text)


def _range(text: str) -> tuple[int, int]:
    first, _, last = text.partition("-")
    start, end = _minute(first), _minute(last)
    if start >= end:
        raise ValueError(f"{text!r}: a time range must start before it ends (24:00 ends a day)")
    return start, end


def _minute(text: str) -> int:
    match = _TIME.fullmatch(text)
    hours, minutes = (int(match[1]), int(match[2])) if match else (-1, -1)
    minute = hours * 60 + minutes
    if not (0 <= hours <= 24 and 0 <= minutes <= 59 and minute <= MINUTES_PER_DAY):
        raise ValueError(f"{text!r} is not a time from 00:00 to 24:00 (HH:MM)")
    return minute
