"""The account settings a backtest and a live session share: cash, costs, sizing and limits.

One type, so a setting added for the account exists in both and live trades with the rules its
backtest had (parity): backtest/run.BacktestConfig is these settings, validated;
live/node.LiveSettings has them beside the session's own (exchange, URLs, streaming).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import UserError

MIN_NOTIONAL_FRACTION = 1e-4  # default minimum order notional: 0.01 % of the starting cash


@dataclass(frozen=True, kw_only=True)
class AccountSettings:
    cash: float = 10_000.0
    fee_bps: float = 10.0
    slippage_bps: float = 0.0
    risk: float = 0.01  # fraction of equity risked per trade (size = risk*equity/stop distance)
    max_symbol_exposure: float = 1.0  # fraction of equity
    max_total_exposure: float = 1.0
    # per strategy instance and side, for strategies without pyramiding: a compliance backstop,
    # since the strategy host already keeps those at one position per side (docs/design.md#fill-semantics);
    # a pyramiding strategy is limited by its own Strategy.max_entries instead
    max_open_positions: int = 1
    # smallest order notional in quote units (an exchange's min notional); None: a fraction
    # MIN_NOTIONAL_FRACTION of the starting cash (1 at 10,000, whatever the quote currency:
    # a default in quote units would mean 10 USDT but 10 BTC); 0: no minimum
    min_notional: float | None = None
    # quantity step in base units (an exchange's lot size): sizes are rounded down to a multiple,
    # a size under one lot is refused; 0: any quantity
    lot_size: float = 0.0
    # fraction of the cash an entry never commits (live: a market buy sized at the signal
    # bar's close fills at the next open, which may be higher; without a margin the exchange
    # refuses it for insufficient balance). 0 in backtests: their results stay as they were
    cash_buffer: float = 0.0

    def min_order_notional(self) -> float:
        """The minimum in quote units that the portfolio applies (the same rule live and back)."""
        if self.min_notional is None:
            return MIN_NOTIONAL_FRACTION * self.cash
        return float(self.min_notional)

    def check(self, what: str) -> None:
        """Raise a UserError naming the first setting out of range (`what`: e.g. 'backtest
        setting'); live checks its options where they are given (real mode starts at cash 0
        and learns the account's balance)."""
        checks = {
            "cash": self.cash > 0,
            "fee_bps": 0 <= self.fee_bps < 10_000,
            "slippage_bps": 0 <= self.slippage_bps < 10_000,
            "risk": 0 < self.risk <= 1,
            "max_symbol_exposure": self.max_symbol_exposure > 0,
            "max_total_exposure": self.max_total_exposure > 0,
            "max_open_positions": self.max_open_positions >= 1,
            "min_notional": self.min_notional is None or 0 <= self.min_notional < self.cash,
            "lot_size": self.lot_size >= 0,
            "cash_buffer": 0 <= self.cash_buffer < 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise UserError(
                    f"{what} {name}={getattr(self, name)!r} is out of range "
                    "(cash > 0, 0 <= fee/slippage bps < 10000, 0 < risk <= 1, exposures > 0, "
                    "max_open_positions >= 1, 0 <= min_notional < cash, lot_size >= 0, "
                    "0 <= cash_buffer < 1)"
                )
