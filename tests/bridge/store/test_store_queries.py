"""The shared SQL and row conversions (voxgate/bridge/store/queries.py), as vectors."""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

import pytest

from voxgate.bridge.store import queries as q
from voxgate.bridge.store.records import (
    FINAL_STATUSES,
    CallFilter,
    CallRecord,
    Delivery,
    NumberRoute,
    Page,
)

CALLS = (
    "SELECT seq, id, mode, direction, status, from_number, to_number, created_at, owner, data"
    " FROM calls"
)
NUMBER = "(from_number = %(number)s OR to_number = %(number)s)"
CREATED = "created_at >= %(created_after)s AND created_at < %(created_before)s"


@pytest.mark.parametrize(
    ("filters", "before", "where", "params"),
    [
        (CallFilter(), None, "", {}),
        (CallFilter(), 7, " WHERE seq < %(before)s", {"before": 7}),
        (CallFilter(status="busy"), None, " WHERE status = %(status)s", {"status": "busy"}),
        (
            CallFilter(number="+1555", mode="live"),
            3,
            f" WHERE {NUMBER} AND mode = %(mode)s AND seq < %(before)s",
            {"number": "+1555", "mode": "live", "before": 3},
        ),
        (
            CallFilter(direction="inbound", created_after=1.5, created_before=9.0),
            None,
            f" WHERE direction = %(direction)s AND {CREATED}",
            {"direction": "inbound", "created_after": 1.5, "created_before": 9.0},
        ),
        (
            CallFilter(status="x' OR 1=1 --"),  # a value is only ever a parameter
            None,
            " WHERE status = %(status)s",
            {"status": "x' OR 1=1 --"},
        ),
    ],
)  # fmt: skip
def test_list_calls_sql(
    filters: CallFilter, before: int | None, where: str, params: dict[str, Any]
) -> None:
    statement, values = q.list_calls(filters, limit=25, before=before)
    assert statement == f"{CALLS}{where} ORDER BY seq DESC LIMIT %(limit)s"
    assert values == {**params, "limit": 26}


def test_a_page_holds_at_least_one_row() -> None:
    with pytest.raises(ValueError, match="at least one"):
        q.paged(CALLS, [], {}, limit=0, before=None)


@pytest.mark.parametrize(
    ("seqs", "limit", "page"),
    [
        ([], 2, Page([], None, False)),
        ([9], 2, Page([9], None, False)),
        ([9, 8], 2, Page([9, 8], None, False)),
        ([9, 8, 5], 2, Page([9, 8], 8, True)),
    ],
)
def test_a_page_from_limit_plus_one_rows(seqs: list[int], limit: int, page: Page[int]) -> None:
    assert q.page([(seq, "row") for seq in seqs], limit, lambda row: row[0]) == page


def test_row_layouts_follow_the_records() -> None:
    assert tuple(f.name for f in fields(Delivery) if f.name != "seq") == q.DELIVERY_COLUMNS
    assert set(q.CALL_COLUMNS) == {f.name for f in fields(CallRecord)} - {"seq"}
    assert set(q.NUMBER_COLUMNS) == {f.name for f in fields(NumberRoute)} - {"seq"}
    assert all(f"'{status}'" in q.LIVE_CALLS for status in FINAL_STATUSES)


def test_a_call_update_merges_data_shallowly() -> None:
    call = CallRecord(
        "c", "test", "inbound", "ringing", "+1", "+2", 1.0, owner="n1", data={"a": {"x": 1}, "b": 2}
    )
    updated = q.updated_call(call, q.CallUpdate("c", None, "", {"a": {"y": 2}, "c": None}))
    assert (updated.status, updated.owner) == ("ringing", "")
    assert updated.data == {"a": {"y": 2}, "b": 2, "c": None}
    assert call.data == {"a": {"x": 1}, "b": 2}  # the record itself is untouched
    with pytest.raises(ValueError, match="sets only"):
        q.call_updates([("c", {"status": "completed"}), ("c", {"seq": 4})])


def test_call_updates_apply_in_order_and_skip_unknown_calls() -> None:
    one = CallRecord("c1", "test", "inbound", "queued", "+1", "+2", 1.0)
    two = replace(one, id="c2")
    updates = q.call_updates(
        [
            ("c1", {"status": "ringing", "data": {"a": 1}}),
            ("c9", {"status": "failed"}),
            ("c1", {"status": "in-progress", "owner": "n1", "data": {"b": 2}}),
            ("c1", {"data": None}),
        ]
    )
    assert updates[1] == q.CallUpdate("c9", "failed", None, {})
    changed = q.apply_call_updates([one, two], updates)
    assert changed == {"c1": replace(one, status="in-progress", owner="n1", data={"a": 1, "b": 2})}


def test_a_number_update_removes_the_settings_set_to_none() -> None:
    route = NumberRoute("n", "+1", "auto_accept", {"a": 1, "b": 2}, 1.0, 1.0, seq=3)
    updated = q.updated_number(route, "reject", {"a": None, "c": 3, "d": None}, 5.0)
    assert updated == NumberRoute("n", "+1", "reject", {"b": 2, "c": 3}, 1.0, 5.0, seq=3)


def test_a_failure_without_a_next_attempt_is_dead_and_its_error_bounded() -> None:
    params = q.failed_params("d", None, "e" * (q.MAX_ERROR + 1), 500)
    assert (params["status"], len(params["error"])) == ("dead", q.MAX_ERROR)
    assert q.failed_params("d", 3.0, "e", None)["status"] == "pending"
