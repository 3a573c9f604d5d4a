"""The receptionist's business hours: the ``--hours`` grammar, and ``is_open`` at its edges.

The call that comes after hours is in test_receptionist.py (``--hours never``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from voxgate.bots import receptionist
from voxgate.bots.receptionist.hours import BusinessHours, parse_hours
from voxgate.bots.sdk.runner import parse_options

# 2025-01-06 is a Monday.
MONDAY, FRIDAY, SATURDAY, SUNDAY = 6, 10, 11, 12


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2025, 1, day, hour, minute, second)


def open_at(hours: BusinessHours, *moments: datetime) -> list[bool]:
    return [hours.is_open(moment) for moment in moments]


def test_always_and_never() -> None:
    every_day = [at(day, hour) for day in range(6, 13) for hour in (0, 12, 23)]
    assert all(open_at(parse_hours("always"), *every_day))
    assert not any(open_at(parse_hours(" Never "), *every_day))


def test_a_range_holds_its_start_and_not_its_end() -> None:
    hours = parse_hours("mon-fri 09:00-17:00")
    assert open_at(
        hours,
        at(MONDAY, 8, 59, 59),
        at(MONDAY, 9),
        at(MONDAY, 16, 59, 59),
        at(MONDAY, 17),
        at(FRIDAY, 9),
        at(SATURDAY, 12),
        at(SUNDAY, 12),
    ) == [False, True, True, False, True, False, False]


def test_several_ranges_and_rules() -> None:
    hours = parse_hours("mon-fri 09:00-12:00,13:00-17:00; sat 10:00-14:00")
    assert open_at(
        hours,
        at(MONDAY, 11, 59),
        at(MONDAY, 12),
        at(MONDAY, 12, 59),
        at(MONDAY, 13),
        at(SATURDAY, 9, 59),
        at(SATURDAY, 10),
        at(SATURDAY, 14),
        at(SUNDAY, 11),
    ) == [True, False, False, True, False, True, False, False]


def test_day_lists_spans_that_wrap_and_a_day_that_ends_at_midnight() -> None:
    hours = parse_hours("MON,Wed 08:00-09:00;fri-sun 22:00-24:00 ; mon 00:00 - 01:00")
    assert open_at(
        hours,
        at(MONDAY, 8),
        at(7, 8),  # Tuesday
        at(8, 8),  # Wednesday
        at(FRIDAY, 23, 59, 59),
        at(SUNDAY, 22),
        at(MONDAY, 0),  # Sunday night goes on into Monday by its own rule
        at(MONDAY, 1),
        at(9, 23),  # Thursday
    ) == [True, False, True, True, True, True, False, False]
    wrapped = parse_hours("sat-mon 10:00-11:00")
    assert open_at(wrapped, at(SATURDAY, 10), at(SUNDAY, 10), at(MONDAY, 10), at(7, 10)) == [
        True,
        True,
        True,
        False,
    ]


def test_the_wall_clock_of_the_time_given_is_what_counts() -> None:
    hours = parse_hours("mon-fri 09:00-17:00")
    paris = ZoneInfo("Europe/Paris")
    eight_utc = datetime(2025, 1, 6, 8, 30, tzinfo=UTC)  # 09:30 in Paris (CET, UTC+1)
    assert open_at(hours, eight_utc, eight_utc.astimezone(paris)) == [False, True]
    summer = datetime(2025, 7, 7, 7, 30, tzinfo=UTC).astimezone(paris)  # CEST: 09:30
    assert hours.is_open(summer)


def test_the_text_is_kept_for_messages() -> None:
    assert str(parse_hours("  mon-fri 09:00-17:00 ")) == "mon-fri 09:00-17:00"


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        ("", "no business hours"),
        ("   ", "no business hours"),
        ("sometimes", "is not days then times"),
        ("mon-fri", "is not days then times"),
        ("09:00-17:00", "is not days then times"),
        ("mon-fri 09:00-17:00 18:00-19:00", "is not days then times"),
        ("mon-fri 09:00-17:00;", "is not days then times"),
        ("monday 09:00-17:00", "'monday' is not a day"),
        ("mon-fry 09:00-17:00", "'fry' is not a day"),
        ("mon- 09:00-17:00", "is not days then times"),
        ("mon-,wed 09:00-17:00", "'' is not a day"),
        ("mon 9:00-17:00", "'9:00' is not a time"),
        ("mon 09:00-17", "'17' is not a time"),
        ("mon 09:00", "'' is not a time"),
        ("mon 09:60-17:00", "'09:60' is not a time"),
        ("mon 09:00-24:01", "'24:01' is not a time"),
        ("mon 09:00-25:00", "'25:00' is not a time"),
        ("mon 17:00-09:00", "must start before it ends"),
        ("mon 09:00-09:00", "must start before it ends"),
        ("mon 22:00-00:00", "must start before it ends"),
    ],
)
def test_bad_hours_say_what_is_wrong(spec: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=re.escape(complaint)):
        parse_hours(spec)


def test_bad_hours_or_time_zone_stop_the_bot_at_start(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, complaint in (
        (["--hours", "mon-fri 9-17"], "bad business hours 'mon-fri 9-17': '9' is not a time"),
        (["--timezone", "Mars/Olympus"], "unknown time zone 'Mars/Olympus'"),
        (["--timezone", "../etc/passwd"], "unknown time zone"),
    ):
        with pytest.raises(SystemExit) as exit_:
            parse_options("receptionist", receptionist, argv, {})
        assert exit_.value.code == 2
        assert complaint in capsys.readouterr().err


def test_hours_and_time_zone_options() -> None:
    options = parse_options(
        "receptionist",
        receptionist,
        ["--timezone", "America/New_York"],
        {"RECEPTIONIST_BOT_HOURS": "sat 10:00-14:00"},
    )
    assert str(options.timezone) == "America/New_York"
    assert options.hours.is_open(datetime(2025, 1, 11, 10, tzinfo=options.timezone))
    with pytest.raises(ValueError, match="RECEPTIONIST_BOT_HOURS: bad business hours"):
        parse_options("receptionist", receptionist, [], {"RECEPTIONIST_BOT_HOURS": "weekdays"})
