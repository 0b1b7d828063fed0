"""Backtest results -> strategy weights -> production config (prod.json) and the database.

Methods (only instances that pass the fitness rule get a non-zero weight):
- binary: weight 1 for every instance that passes.
- sortino: proportional to sortino, normalised to sum 1.
- inverse_vol: proportional to 1 / annualised volatility of daily returns, normalised to sum 1.

A weighted portfolio scales each instance's pnl by its weight on capital = cash x sum(weights):
binary weights give every selected instance its own cash, normalised weights split one cash.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.exports import params_text
from analysis.metrics import DEFAULT_CASH, compute_metrics
from analysis.spans import MIN_ANNUALISED_DAYS, MIN_DAILY_RETURNS, AnnualiseMinimum
from analysis.trades_io import TradesFileError, read_trades
from core.errors import UserError

METHODS = ("binary", "sortino", "inverse_vol")
KEY_COLUMNS = ("strategy", "symbol", "interval", "params")


class WeightsError(UserError):
    """Bad input to `cli.py weights`; the message says what and how to fix it."""


@dataclass(frozen=True)
class FitnessRule:
    min_sortino: float = 0.0  # sortino must be strictly above
    min_expectancy: float = 0.0  # expectancy (mean pnl per trade) strictly above
    min_trades: int = 20  # at least this many trades
    # the sample: days with data and daily returns (annualised metrics are None below them)
    min_days: float = MIN_ANNUALISED_DAYS
    min_daily_returns: int = MIN_DAILY_RETURNS

    @property
    def minimum(self) -> AnnualiseMinimum:
        return AnnualiseMinimum(self.min_days, self.min_daily_returns)

    def passes(self, row: dict[str, Any] | pd.Series) -> bool:
        return self.refusal(row) is None

    def refusal(self, row: dict[str, Any] | pd.Series) -> str | None:
        """Why the row fails the rule (the first reason), or None when it passes."""
        sortino, expectancy, trades = (
            _num(row.get(k)) for k in ("sortino", "expectancy", "trades")
        )
        if trades is None or trades < self.min_trades:
            return f"too few trades (< {self.min_trades})"
        short = self._sample_refusal(row)
        if short:
            return short
        if sortino is None or expectancy is None:
            return "sortino or expectancy undefined"  # undefined metrics never pass
        if not sortino > self.min_sortino:
            return f"sortino <= {self.min_sortino:g}"
        if not expectancy > self.min_expectancy:
            return f"expectancy <= {self.min_expectancy:g}"
        return None

    def _sample_refusal(self, row: dict[str, Any] | pd.Series) -> str | None:
        """Too short a sample: days with data (span_days, else period_end - period_start of an
        older results.csv) or daily returns below the minimum; unknown counts as long enough."""
        days = _num(row.get("span_days"))
        if days is None and row.get("period_start") and row.get("period_end"):
            try:
                span = pd.Timestamp(row["period_end"]) - pd.Timestamp(row["period_start"])
                days = span / pd.Timedelta(days=1)
            except (ValueError, TypeError):
                days = None
        if days is not None and days < self.min_days:
            return f"sample too short (< {self.min_days:g} days of data)"
        daily = _num(row.get("daily_returns"))
        if daily is not None and daily < self.min_daily_returns:
            return f"sample too small (< {self.min_daily_returns} daily returns)"
        return None

    def describe(self) -> str:
        return (
            f"sortino > {self.min_sortino:g} and expectancy > {self.min_expectancy:g} "
            f"and trades >= {self.min_trades} and >= {self.min_days:g} days of data"
        )


def _num(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# ---------------------------------------------------------------- loading


def results_paths(path: Path) -> tuple[Path, Path | None]:
    """(results.csv, trades.csv or None) for a results.csv or a directory holding it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such results file or directory")
    results = path / "results.csv" if path.is_dir() else path
    if not results.exists():
        raise WeightsError(
            f"{path} has no results.csv; run `cli.py backtest --all --out {path}` first"
        )
    trades = results.parent / "trades.csv"
    return results, trades if trades.exists() else None


def load_results(path: Path) -> pd.DataFrame:
    """results.csv rows with canonical params text; failed runs dropped."""
    try:
        frame = pd.read_csv(path, dtype={"params": str, "run_id": str, "error": str})
    except pd.errors.EmptyDataError:
        raise WeightsError(f"{path} is empty; expected one row per backtest") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"{path} is not a readable CSV file: {first}") from None
    missing = [c for c in (*KEY_COLUMNS, "sortino", "expectancy", "trades") if c not in frame]
    if missing:
        raise WeightsError(
            f"{path}: missing column(s) {', '.join(missing)}; give the results.csv written by "
            "`cli.py backtest --all`"
        )
    if "status" in frame:
        frame = frame[frame["status"].fillna("done") == "done"]
    frame = frame.reset_index(drop=True)
    frame["params"] = _canonical_params(
        [p if isinstance(p, str) else "{}" for p in frame["params"]], path
    )
    return frame


def _canonical_params(cells: list[str], path: Path) -> list[str]:
    """The params cells of a file as canonical JSON text; a cell that is not JSON is the file's
    problem: one WeightsError naming the file and the cell."""
    out = []
    for cell in cells:
        try:
            out.append(params_text(cell))
        except ValueError:
            raise WeightsError(
                f"{path}: params {cell!r} is not a JSON object like "
                '{"lookback": 20}; give the file `cli.py backtest --all` wrote'
            ) from None
    return out


# ---------------------------------------------------------------- weights


def compute_weights(results: pd.DataFrame, method: str, rule: FitnessRule) -> pd.Series:
    """One weight per results row (0 for rows that fail the rule)."""
    if method not in METHODS:
        raise WeightsError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    passing = pd.Series([rule.passes(row) for _, row in results.iterrows()], index=results.index)
    if method == "binary":
        return passing.astype(float)
    if method == "sortino":
        raw = results["sortino"].map(_num).fillna(0.0).clip(lower=0.0)
    else:
        if "volatility" not in results:
            raise WeightsError(
                "results have no volatility column (needed by --method inverse_vol); re-run the "
                "backtests with this version or use --method binary or sortino"
            )
        vol = results["volatility"].map(_num)
        raw = vol.map(lambda v: 1.0 / v if v is not None and v > 0 else 0.0)
    raw = raw.where(passing, 0.0).astype(float)
    total = float(raw.sum())
    return raw / total if total > 0 else raw * 0.0


def selected_instances(results: pd.DataFrame, weights: pd.Series) -> list[dict[str, Any]]:
    """Non-zero instances for prod.json, heaviest first."""
    rows = []
    for i, row in results.iterrows():
        if weights[i] <= 0:
            continue
        entry = {
            "family": row["strategy"],
            "params": json.loads(row["params"]),
            "symbol": row["symbol"],
            "interval": row["interval"],
            "weight": float(weights[i]),
        }
        if "instance_id" in row and _num(row["instance_id"]) is not None:
            entry["instance_id"] = int(row["instance_id"])
        rows.append(entry)
    return sorted(rows, key=lambda e: -e["weight"])


def prod_config(
    results: pd.DataFrame, weights: pd.Series, method: str, rule: FitnessRule, source: str
) -> dict[str, Any]:
    return {
        "method": method,
        "rule": asdict(rule),
        "source": source,
        "instances": selected_instances(results, weights),
    }


def add_p95_drawdowns(
    instances: list[dict[str, Any]], trades: pd.DataFrame, cash: float, draws: int, seed: int
) -> None:
    """Each prod.json entry gains `p95_drawdown`: the 95th percentile of its max drawdown over
    a block bootstrap of its own trades' days on `cash` (analysis/bootstrap.py); None (null)
    when it has no trades here. A limit live can check an instance's drawdown against."""
    from analysis.bootstrap import bootstrap

    groups = dict(list(trades.groupby(list(KEY_COLUMNS), sort=False))) if len(trades) else {}
    for entry in instances:
        params = params_text(json.dumps(entry["params"]))
        key = (str(entry["family"]), str(entry["symbol"]), str(entry["interval"]), params)
        bands = bootstrap(groups.get(key), cash, draws, seed)
        entry["p95_drawdown"] = bands.bands["max_drawdown"][2] if bands is not None else None


def write_prod(config: dict[str, Any], path: Path) -> Path:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(config, indent=2, allow_nan=False) + "\n")
    return Path(path)


# ---------------------------------------------------------------- in / out of sample


def instance_key(row: dict[str, Any] | pd.Series) -> tuple[str, str, str, str]:
    return (str(row["strategy"]), str(row["symbol"]), str(row["interval"]), str(row["params"]))


def load_split_trades(trades_path: Path | None, results_path: Path) -> pd.DataFrame:
    if trades_path is None:
        raise WeightsError(
            f"--split needs the combined trades.csv next to {results_path} (written by "
            "`cli.py backtest --all`); none found"
        )
    trades = read_trades(trades_path, allow_empty=True)
    if "params" not in trades:
        raise TradesFileError(f"{trades_path}: --split needs a params column per trade")
    trades["params"] = _canonical_params(list(trades["params"]), trades_path)
    return trades


def per_instance_metrics(
    trades: pd.DataFrame,
    keys: list[tuple],
    cash: float,
    minimum: AnnualiseMinimum = AnnualiseMinimum(),
) -> pd.DataFrame:
    """Metrics of each instance over the given trades (equity rebuilt from `cash`)."""
    groups = {k: g for k, g in trades.groupby(list(KEY_COLUMNS), sort=False)} if len(trades) else {}
    rows = []
    for key in keys:
        metrics = compute_metrics(groups.get(key), None, cash, minimum)
        rows.append({**dict(zip(KEY_COLUMNS, key, strict=True)), **metrics})
    return pd.DataFrame(rows)


def weighted_portfolio(
    trades: pd.DataFrame, weights: dict[tuple, float], cash: float
) -> dict[str, Any]:
    """Metrics of the portfolio that trades each instance's pnl x its weight."""
    total_weight = sum(w for w in weights.values() if w > 0)
    if total_weight <= 0:
        return compute_metrics(None, None, cash)
    keys = list(zip(*(trades[c] for c in KEY_COLUMNS), strict=True)) if len(trades) else []
    scale = pd.Series([weights.get(k, 0.0) for k in keys], index=trades.index, dtype=float)
    chosen = trades[scale > 0].copy()
    chosen["pnl"] = chosen["pnl"] * scale[scale > 0]
    chosen["fees"] = chosen["fees"] * scale[scale > 0]
    return compute_metrics(chosen, None, cash * total_weight)


def split_report(
    results: pd.DataFrame,
    trades: pd.DataFrame,
    split: pd.Timestamp,
    method: str,
    rule: FitnessRule,
    cash: float = DEFAULT_CASH,
) -> dict[str, Any]:
    """Weights chosen on trades that exited before `split`; the weighted portfolio measured on
    trades entered at or after it (trades spanning the split belong to neither)."""
    keys = [instance_key(r) for _, r in results.iterrows()]
    keys = list(dict.fromkeys(keys))
    before = trades[trades["exit_time"] < split]
    after = trades[trades["entry_time"] >= split]
    in_sample = per_instance_metrics(before, keys, cash, rule.minimum)
    weights = compute_weights(in_sample, method, rule)
    chosen = {instance_key(r): float(weights[i]) for i, r in in_sample.iterrows()}
    everyone = (
        {k: 1.0 / len(keys) for k in keys} if method != "binary" else dict.fromkeys(keys, 1.0)
    )
    return {
        "in_sample_results": in_sample,
        "weights": weights,
        "in_sample": weighted_portfolio(before, chosen, cash),
        "out_of_sample": weighted_portfolio(after, chosen, cash),
        "out_of_sample_all": weighted_portfolio(after, everyone, cash),
        "out_of_sample_results": per_instance_metrics(after, keys, cash, rule.minimum),
    }


# ---------------------------------------------------------------- database


def write_to_db(
    url: str, results: pd.DataFrame, weights: pd.Series, exchange: str
) -> tuple[int, int]:
    """Set weight and enabled (= weight > 0) on the matching strategy instances.

    Matches by instance_id when results.csv has one, else by family, symbol, interval and params.
    Instances with a non-zero weight that are not in the database yet are added; unmatched
    zero-weight rows are skipped (no point storing thousands of disabled instances).
    Returns (updated, added).
    """
    from store import instances as store_instances

    existing = store_instances.list_instances(url)
    by_id = {inst.id: inst for inst in existing}
    by_key = {(i.family, i.symbol, i.interval, params_text(i.params_json)): i for i in existing}
    updated = added = 0
    for i, row in results.iterrows():
        weight = float(weights[i])
        inst_id = _num(row.get("instance_id"))
        inst = by_id.get(int(inst_id)) if inst_id is not None else None
        inst = inst or by_key.get(instance_key(row))
        if inst is not None:
            store_instances.set_weight(url, inst.id, weight)
            store_instances.set_enabled(url, inst.id, weight > 0)
            updated += 1
        elif weight > 0:
            store_instances.add_instance(
                url,
                row["strategy"],
                exchange,
                row["symbol"],
                row["interval"],
                json.loads(row["params"]),
                enabled=True,
                weight=weight,
            )
            added += 1
    return updated, added
