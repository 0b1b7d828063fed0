"""The risk rules (live/risk_limits.py), by hand: each limit breaches exactly at its threshold
and not a hair before; a guard whose comparison is off by one (> instead of >=) misses the
threshold case; the daily loss clears when the UTC day rolls; the settings' validation."""

from __future__ import annotations

import datetime as dt

import pytest

from core.errors import UserError
from live.risk_limits import (
    MINUTE_NS,
    LimitKind,
    OnBreach,
    RiskGuard,
    RiskLimits,
)

DAY_NS = 86_400 * 1_000_000_000
T0 = int(dt.datetime(2024, 3, 1, 1, tzinfo=dt.UTC).timestamp()) * 1_000_000_000  # 01:00 UTC


def guard(**limits: object) -> RiskGuard:
    return RiskGuard(RiskLimits(**limits), "BTC")


def test_daily_loss_breaches_exactly_at_its_threshold() -> None:
    g = guard(max_daily_loss=0.05)
    assert g.mark(T0, 10.0, {}) == []  # the day's start: 10
    assert g.mark(T0 + 1, 9.5000001, {}) == []  # lost 4.999999%: not yet
    [breach] = g.mark(T0 + 2, 9.5, {})  # lost 0.5 / 10 = 5% exactly
    assert breach.kind == LimitKind.DAILY_LOSS and breach.scope == "BTC"
    assert "lost 5% of the day's starting equity 10" in breach.reason
    assert g.mark(T0 + 3, 9.0, {}) == []  # latched: said once
    assert g.before_entry(T0 + 4, "a", 0) is breach


def test_drawdown_breaches_exactly_at_its_threshold_from_the_high_water_mark() -> None:
    g = guard(max_drawdown=0.25)
    g.mark(T0, 10.0, {})
    g.mark(T0 + 1, 16.0, {})  # the high-water mark
    assert g.mark(T0 + 2, 12.000001, {}) == []
    [breach] = g.mark(T0 + 3, 12.0, {})  # 4 / 16 = 25%
    assert breach.kind == LimitKind.DRAWDOWN and "drawdown 25% from the high-water mark 16" in (
        breach.reason
    )


def test_an_off_by_one_comparison_misses_the_threshold() -> None:
    """The deliberately broken guard: loss > limit instead of >=; the threshold case fails."""

    class Late(RiskGuard):
        def _equity_breach(self, ts, scope, tracker, value, account):  # noqa: ANN001, ANN202
            if account.day_start and (tracker.day_start - value) / account.day_start > 0.05:
                return super()._equity_breach(ts, scope, tracker, value, account)
            return None

    late = Late(RiskLimits(max_daily_loss=0.05), "BTC")
    late.mark(T0, 10.0, {})
    assert late.mark(T0 + 1, 9.5, {}) == []  # missed: the suite's threshold case catches it


def test_an_instance_breaches_alone_against_the_accounts_equity() -> None:
    g = guard(max_daily_loss=0.05)
    g.mark(T0, 10.0, {"a": 0.0, "b": 0.0})
    assert g.mark(T0 + 1, 10.0, {"a": -0.4999, "b": 0.4999}) == []
    [breach] = g.mark(T0 + 2, 10.0, {"a": -0.5, "b": 0.5})  # a lost 5% of the account
    assert breach.scope == "BTC a" and breach.kind == LimitKind.DAILY_LOSS
    assert g.before_entry(T0 + 3, "a", 0) is breach
    assert g.before_entry(T0 + 3, "b", 0) is None  # the others go on


def test_the_daily_loss_clears_when_the_utc_day_rolls_the_drawdown_does_not() -> None:
    g = guard(max_daily_loss=0.05, max_drawdown=0.5)
    g.mark(T0, 10.0, {})
    [breach] = g.mark(T0 + 1, 9.0, {})
    assert breach.kind == LimitKind.DAILY_LOSS
    assert g.mark(T0 + 22 * 3600 * 10**9, 9.0, {}) == []  # 23:00 the same day: still stopped
    assert g.blocked() is breach
    g.mark(T0 + 23 * 3600 * 10**9, 9.0, {})  # 00:00 the next day: the day starts at 9
    assert g.blocked() is None and g.trackers["BTC"].day_start == 9.0
    g2 = guard(max_drawdown=0.05)
    g2.mark(T0, 10.0, {})
    g2.mark(T0 + 1, 9.0, {})
    g2.mark(T0 + DAY_NS, 9.0, {})
    assert g2.blocked() is not None and g2.blocked().kind == LimitKind.DRAWDOWN


def test_max_open_refuses_the_entry_at_the_limit_and_does_not_latch() -> None:
    g = guard(max_open=2)
    assert g.before_entry(T0, "a", 1) is None
    breach = g.before_entry(T0, "a", 2)
    assert breach.kind == LimitKind.OPEN_POSITIONS and not breach.latching
    assert "2 positions open or pending, 2 allowed" in breach.reason
    assert g.blocked() is None and g.before_entry(T0, "a", 1) is None


def test_max_order_notional_allows_exactly_the_fraction_and_refuses_above() -> None:
    g = guard(max_order_notional=0.25)
    assert g.order_notional(T0, 2.5, 10.0) is None  # 25% exactly
    breach = g.order_notional(T0, 2.5000001, 10.0)
    assert breach.kind == LimitKind.ORDER_NOTIONAL and "> 25% of equity 10" in breach.reason


def test_orders_per_minute_latch_on_the_entry_after_the_limit() -> None:
    g = guard(max_orders_per_minute=3)
    for k in range(3):
        assert g.before_entry(T0 + k, "a", 0) is None
        g.entered(T0 + k)
    assert g.before_entry(T0 + MINUTE_NS, "a", 0) is None  # the first left the minute
    g.entered(T0 + MINUTE_NS)
    breach = g.before_entry(T0 + MINUTE_NS, "a", 0)  # T0+1, T0+2, T0+60 s in 60 s: a 4th
    assert breach.kind == LimitKind.ORDERS_PER_MINUTE and breach.latching
    assert g.before_entry(T0 + 10 * MINUTE_NS, "a", 0) is breach  # a kill switch: it stays


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"max_daily_loss": -0.1},
            "--max-daily-loss must be a fraction of equity in (0, 1], got -0.1",
        ),
        ({"max_drawdown": 1.5}, "--max-drawdown must be a fraction of equity in (0, 1], got 1.5"),
        ({"max_order_notional": 0.0}, "--max-order-notional must be a fraction"),
        ({"max_open": 0}, "--max-open must be a whole number >= 1, got 0"),
        ({"max_orders_per_minute": 2.5}, "--max-orders-per-minute must be a whole number"),
        ({"on_breach": "sell"}, "--on-breach must be block or close, got 'sell'"),
    ],
)
def test_bad_values_are_one_clear_error(values: dict, message: str) -> None:
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        RiskLimits.parse(values)


def test_limits_parse_and_text() -> None:
    limits = RiskLimits.parse({"max_drawdown": 0.1, "max_open": 10, "on_breach": "close"}, "x: ")
    assert limits == RiskLimits(max_drawdown=0.1, max_open=10, on_breach=OnBreach.CLOSE)
    assert limits.text() == "drawdown 10%, open 10; on breach close"
    assert RiskLimits().text() == "off" and not RiskLimits().active()
    assert limits.watches_equity() and not RiskLimits(max_open=1).watches_equity()
    with pytest.raises(UserError, match=r"x: unknown limit max_loss"):
        RiskLimits.parse({"max_loss": 0.1}, "x: ")
    with pytest.raises(UserError, match=r"x: max_open must be a whole number >= 1, got True"):
        RiskLimits.parse({"max_open": True}, "x: ")


class MemoryStore:
    def __init__(self) -> None:
        self.rows: dict[str, dict] = {}

    def load(self) -> dict[str, dict]:
        return {k: dict(v) for k, v in self.rows.items()}

    def save(self, scope: str, row: dict) -> None:
        self.rows[scope] = dict(row)


def test_a_running_guard_resumes_within_2_s_of_reset_limits_and_measures_anew() -> None:
    now = [0.0]
    store = MemoryStore()
    g = RiskGuard(RiskLimits(max_drawdown=0.25), "BTC", store, clock=lambda: now[0])
    g.mark(T0, 16.0, {})
    [breach] = g.mark(T0 + 1, 12.0, {})
    assert store.rows["BTC"]["breach_kind"] == "drawdown" and store.rows["BTC"]["high_water"] == 16
    store.rows.clear()  # `cli.py live reset-limits`
    now[0] = 1.9
    assert g.before_entry(T0 + 2, "a", 0) is breach  # not reread yet
    now[0] = 2.0
    assert g.before_entry(T0 + 3, "a", 0) is None
    assert g.mark(T0 + 4, 12.0, {}) == [] and g.trackers["BTC"].high_water == 12.0
    # a restart reads the baselines back: the high-water mark goes on from 12
    again = RiskGuard(RiskLimits(max_drawdown=0.25), "BTC", store, clock=lambda: now[0])
    assert again.trackers["BTC"].high_water == 12.0 and again.trackers["BTC"].day_start == 12.0
    [breach] = again.mark(T0 + 5, 9.0, {})
    assert breach.reason.startswith("drawdown 25% from the high-water mark 12")


def test_a_new_high_water_mark_is_written_at_most_every_30_s() -> None:
    now = [0.0]
    store = MemoryStore()
    g = RiskGuard(RiskLimits(max_drawdown=0.5), "BTC", store, clock=lambda: now[0])
    g.mark(T0, 10.0, {})  # the day's start: written
    g.mark(T0 + 1, 11.0, {})
    assert store.rows["BTC"]["high_water"] == 10.0
    now[0] = 30.0
    g.mark(T0 + 2, 12.0, {})
    assert store.rows["BTC"]["high_water"] == 12.0


def test_a_stored_daily_loss_rolls_with_the_day_also_without_marks() -> None:
    store = MemoryStore()
    first = RiskGuard(RiskLimits(max_daily_loss=0.05), "BTC", store)
    first.mark(T0, 10.0, {})
    [breach] = first.mark(T0 + 1, 9.0, {})
    later = RiskGuard(RiskLimits(max_open=5), "BTC", store)  # restarted with another limit
    again = later.before_entry(T0 + 2, "a", 0)  # the same day: still stopped
    assert (again.kind, again.scope, again.reason) == (breach.kind, "BTC", breach.reason)
    assert later.before_entry(T0 + DAY_NS, "a", 0) is None  # the next day: rolled
    assert store.rows["BTC"]["breach_kind"] is None
