"""Human labels and units for the metric keys (HTML report; the JSON keys stay as they are)."""

from __future__ import annotations

from typing import Any

from analysis.report import fmt

MONEY_KEYS = {
    "expectancy",
    "avg_win",
    "avg_loss",
    "total_pnl",
    "fees",
    "initial_cash",
    "final_equity",
}
# key -> (label, unit); unit "%" for shares, "{ccy}" for money, "" for counts and ratios
METRIC_LABELS: dict[str, tuple[str, str]] = {
    "trades": ("Trades", ""),
    "wins": ("Winning trades", ""),
    "losses": ("Losing trades", ""),
    "win_rate": ("Win rate", "%"),
    "expectancy": ("Expectancy per trade", "{ccy}"),
    "avg_win": ("Average win", "{ccy}"),
    "avg_loss": ("Average loss", "{ccy}"),
    "profit_factor": ("Profit factor", "wins / losses"),
    "payoff_ratio": ("Payoff ratio", "avg win / avg loss"),
    "total_return": ("Total return", "%"),
    "cagr": ("Annual growth (CAGR)", "%"),
    "max_drawdown": ("Max drawdown", "%"),
    "max_drawdown_duration_days": ("Longest drawdown", "days"),
    "sortino": ("Sortino ratio", "annualised"),
    "sharpe": ("Sharpe ratio", "annualised"),
    "volatility": ("Volatility", "% a year"),
    "pct_months_profitable": ("Profitable months", "%"),
    "pct_weeks_profitable": ("Profitable weeks", "%"),
    "best_month": ("Best month", "%"),
    "worst_month": ("Worst month", "%"),
    "exposure": ("Time in the market", "%"),
    "longest_losing_streak": ("Longest losing streak", "trades"),
    "longest_winning_streak": ("Longest winning streak", "trades"),
    "total_pnl": ("Net profit", "{ccy}"),
    "fees": ("Fees paid", "{ccy}"),
    "initial_cash": ("Initial cash", "{ccy}"),
    "final_equity": ("Final equity", "{ccy}"),
    "period_start": ("First bar", "UTC"),
    "period_end": ("Last bar", "UTC"),
}
# The headline figures, in the order the report's cards show them.
HEADLINE_KEYS = (
    "total_return",
    "cagr",
    "max_drawdown",
    "sharpe",
    "sortino",
    "win_rate",
    "profit_factor",
    "trades",
)


def label(key: str, currency: str | None = None) -> str:
    """ "Win rate (%)", "Net profit (USD)": the label with its unit."""
    name, unit = METRIC_LABELS.get(key, (key.replace("_", " ").capitalize(), ""))
    unit = unit.format(ccy=currency or "quote currency")
    return f"{name} ({unit})" if unit else name


def value_text(key: str, value: Any) -> str:
    """One value as the HTML report shows it (the text report's formatter, its HTML spelling)."""
    return fmt(key, value, html=True)
    return f"{value:,.2f}"
