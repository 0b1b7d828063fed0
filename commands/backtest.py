"""`cli.py backtest`: one strategy in-process, every stored instance (--all), or a portfolio."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from commands.errors import UserError
from commands.options import db_option

if TYPE_CHECKING:
    import pandas as pd

    from backtest.run import BacktestConfig, BacktestResult

# The engine, store and pandas are imported inside the functions that use them: `cli.py --help`
# and the other groups' commands stay fast (issue 13: start-up under 0.4 s of CPU).

_out = Console()

HELP_STRATEGY = "Built-in strategy name (see `cli.py strategies list`) or path/to/file.py:Class."

# --help panels: what each option is for (options in no panel apply to every kind of run)
SINGLE = "Single backtest"
ALL = "Every stored instance (--all)"
PORTFOLIO = "Portfolio (--portfolio)"
RAY = "Ray (--all, --portfolio)"
RUN = "Data, output and costs (every kind of run)"


# cli.py registers `backtest` with these: words after the options reach `ctx.args`, so the
# issue's unquoted form `--grid lookback=10,20,50 sl_pct=0.01,0.02` works (the words after the
# first grid entry are more grid entries) and any other stray word is one clear error.
CONTEXT_SETTINGS = {"allow_extra_args": True, "ignore_unknown_options": True}
_GRID_ITEM = re.compile(r"[A-Za-z_]\w*=\S+")


def _opt(*names: str, help: str, panel: str = RUN) -> Any:
    return typer.Option(*names, help=help, rich_help_panel=panel)


# One alias per option (typer reads the Annotated metadata), so `backtest` stays short.
StrategyOpt = Annotated[str | None, _opt("--strategy", "-s", help=HELP_STRATEGY, panel=SINGLE)]
SymbolOpt = Annotated[
    str | None,
    _opt(
        "--symbol", panel=SINGLE, help="Market symbol, e.g. ETH/BTC (with --all: only this symbol)."
    ),
]
IntervalOpt = Annotated[
    str | None,
    _opt(
        "--interval",
        "-i",
        panel=SINGLE,
        help="Bar interval, e.g. 5m (with --all: only this interval).",
    ),
]
ParamOpt = Annotated[
    list[str],
    _opt("--param", "-p", panel=SINGLE, help="Strategy parameter key=value (repeatable)."),
]
DataOpt = Annotated[
    Path | None,
    _opt(
        "--data", panel=SINGLE, help="Read bars from this CSV/Parquet file instead of the database."
    ),
]
AllOpt = Annotated[
    bool, _opt("--all", panel=ALL, help="Backtest every enabled stored strategy instance on Ray.")
]
FamilyOpt = Annotated[str | None, _opt("--family", help="Only this strategy family.", panel=ALL)]
GridOpt = Annotated[
    list[str],
    _opt(
        "--grid",
        panel=ALL,
        help="Parameter grid key=v1,v2,... (repeatable, or several entries after "
        "one --grid: --grid lookback=10,20 sl_pct=0.01,0.02).",
    ),
]
SeparateOpt = Annotated[
    bool, _opt("--separate", help="Also write one directory per run.", panel=ALL)
]
KeepDashboardOpt = Annotated[
    bool,
    _opt(
        "--keep-dashboard",
        panel=ALL,
        help="Keep the local Ray and its dashboard up after the run, until "
        "Ctrl-C (the URL is printed).",
    ),
]
PortfolioOpt = Annotated[
    Path | None,
    _opt(
        "--portfolio",
        panel=PORTFOLIO,
        help="Backtest the portfolio described by this prod.json on one shared "
        "account (`cli.py weights` writes it).",
    ),
]
RayOpt = Annotated[
    bool, _opt("--ray", panel=PORTFOLIO, help="Compute the instances' signals on Ray actors.")
]
RayAddressOpt = Annotated[
    str | None,
    _opt(
        "--ray-address",
        panel=RAY,
        help="Ray cluster address for --all and --portfolio (with --portfolio "
        "it implies --ray; default: local Ray).",
    ),
]
StartOpt = Annotated[str | None, _opt("--start", help="First bar time (ISO, UTC), inclusive.")]
EndOpt = Annotated[str | None, _opt("--end", help="Last bar time (ISO, UTC), inclusive.")]
DbOpt = Annotated[str | None, db_option(panel=RUN)]
OutOpt = Annotated[
    str | None,
    _opt("--out", "-o", help="Directory for the output files (--all default: backtest_all)."),
]
ExchangeOpt = Annotated[
    str | None,
    _opt(
        "--exchange",
        "-e",
        help="Exchange of stored bars, default binance (--all: only the "
        "instances on this exchange; default: every instance on its own).",
    ),
]
FeeOpt = Annotated[float, _opt("--fee-bps", help="Fee per fill, bps of notional.")]
SlippageOpt = Annotated[
    float, _opt("--slippage-bps", help="Slippage against you on market/stop fills, bps.")
]
CashOpt = Annotated[float, _opt("--cash", help="Starting cash.")]
RiskOpt = Annotated[
    float, _opt("--risk", help="Fraction of equity risked per trade (size = risk*equity/stop).")
]
LotSizeOpt = Annotated[
    float,
    _opt(
        "--lot-size",
        help="Quantity step in base units: sizes round down to whole lots, less "
        "than one lot is refused (default 0: any quantity).",
    ),
]
MinNotionalOpt = Annotated[
    float | None,
    _opt(
        "--min-notional",
        help="Smallest order notional in quote units; smaller orders are "
        "refused as dust (default: 0.01% of --cash; 0: none).",
    ),
]
FactorsOpt = Annotated[
    bool,
    _opt(
        "--factors/--no-factors",
        panel=SINGLE,
        help="Also write factors.csv: the factors known at each trade's signal "
        "bar (off by default: it costs about as much CPU as the backtest itself).",
    ),
]


def backtest(
    ctx: typer.Context,
    strategy: StrategyOpt = None,
    symbol: SymbolOpt = None,
    interval: IntervalOpt = None,
    param: ParamOpt = [],  # noqa: B006 - typer copies the default
    data: DataOpt = None,
    all_: AllOpt = False,
    family: FamilyOpt = None,
    grid: GridOpt = [],  # noqa: B006
    separate: SeparateOpt = False,
    keep_dashboard: KeepDashboardOpt = False,
    portfolio: PortfolioOpt = None,
    use_ray: RayOpt = False,
    ray_address: RayAddressOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    db: DbOpt = None,
    out: OutOpt = None,
    exchange: ExchangeOpt = None,
    fee_bps: FeeOpt = 10.0,
    slippage_bps: SlippageOpt = 0.0,
    cash: CashOpt = 10_000.0,
    risk: RiskOpt = 0.01,
    min_notional: MinNotionalOpt = None,
    lot_size: LotSizeOpt = 0.0,
    factors: FactorsOpt = False,
) -> None:
    """Backtest one strategy, a portfolio, or every instance (--all)."""
    from factors.bars import parse_utc

    grid = grid_with_extra_args(list(grid), list(ctx.args), all_)
    config = _config(cash, fee_bps, slippage_bps, risk, min_notional, lot_size)
    # Dates are checked once here: a typo is one error, not one "no data" line per series.
    start, end = parse_utc(start, "--start"), parse_utc(end, "--end")
    if out is not None and not out.strip():
        raise UserError("--out is empty; give an output directory, e.g. --out out/run1")
    if not all_ and portfolio is None:
        _require(strategy=strategy, symbol=symbol, interval=interval, out=out)
    if keep_dashboard and not all_:
        raise UserError("--keep-dashboard is for --all (the runs on Ray); add --all or drop it")
    if portfolio is not None and not all_:
        _checked_portfolio(portfolio, out)  # a bad prod.json: one error, no --out created
    out_dir, fresh = _checked_out(out, "backtest_all" if all_ else None)
    with _nothing_left_on_failure(out_dir, fresh):
        url = _opened_db(db)  # before any run: a bad --db must not leave files without a run
        if all_:
            return _run_all(
                url,
                out_dir,
                family,
                symbol,
                interval,
                start,
                end,
                grid,
                ray_address,
                separate,
                config,
                exchange,
                keep_dashboard,
            )
        exchange = exchange or "binance"
        if portfolio is not None:
            return _run_portfolio(
                portfolio, out_dir, url, start, end, config, ray_address, use_ray, exchange
            )
        from backtest.run import write_outputs

        result, bars = run_single(
            strategy, symbol, interval, param, start, end, data, url, exchange, config
        )
        write_outputs(result, out_dir, bars if factors else None)
        store_result(url, result)  # only once the files are written
        _summary(result, out_dir, factors)


def _checked_portfolio(path: Path, out: str | None) -> None:
    """prod.json read and its instances built before --out is created."""
    from backtest.portfolio_config import build_members, load_portfolio_config

    if out is None:
        raise UserError(
            "backtest --portfolio needs --out DIR; e.g. cli.py backtest --portfolio prod.json "
            "--out out/portfolio"
        )
    build_members(load_portfolio_config(path))  # unknown families and bad parameters, too


@contextlib.contextmanager
def _nothing_left_on_failure(out_dir: Path | None, fresh: bool) -> Iterator[None]:
    """An --out directory this command created is removed again when the run fails before
    writing anything into it (no data, a bad database...): a failed run leaves nothing."""
    try:
        yield
    except BaseException:
        if fresh and out_dir is not None and out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()
        raise


def _checked_out(out: str | None, default: str | None) -> tuple[Path | None, bool]:
    """The output directory, created and checked writable before anything runs (an empty
    --out, a file, a read-only directory: one error); None when not given and no default.
    Also whether it was created now."""
    from backtest.run import prepare_out_dir

    if out is None and default is None:
        return None, False
    path = default if out is None else out
    fresh = not Path(path).exists()
    return prepare_out_dir(path), fresh


def _opened_db(db: str | None) -> str:
    """The database URL, opened (tables created) now: StoreError at once if it cannot be."""
    from store.db import get_engine, resolve_url

    url = resolve_url(db)
    get_engine(url)
    return url


def grid_with_extra_args(grid: list[str], extras: list[str], all_: bool) -> list[str]:
    """--grid entries plus the `key=v1,v2` words typed after them (--all with --grid only);
    any other stray word raises one UserError that says how to write it."""
    entries = []
    for word in extras:
        if all_ and grid and _GRID_ITEM.fullmatch(word):
            entries.append(word)
            continue
        if _GRID_ITEM.fullmatch(word):
            hint = (
                f"parameter values go after an option: --all --grid {word} (a grid over every "
                f"instance) or --param {word} (a single backtest)"
            )
        elif word.startswith("-"):
            hint = "there is no such option; see `cli.py backtest --help`"
        else:
            hint = "see `cli.py backtest --help` for the options"
        raise UserError(f"unexpected argument {word!r}; {hint}")
    return [*grid, *entries]


def run_single(
    strategy: str,
    symbol: str,
    interval: str,
    param: list[str],
    start: Any,
    end: Any,
    data: Path | None,
    url: str,
    exchange: str,
    config: BacktestConfig,
) -> tuple[BacktestResult, pd.DataFrame]:
    """Load the bars and run the backtest in this process; return the result and the bars."""
    from backtest.run import run_backtest
    from strategies.registry import make_strategy, parse_param_args

    instance = make_strategy(strategy, parse_param_args(param))
    bars = load_input_bars(data, url, exchange, symbol, interval, start, end)
    return run_backtest(instance, bars, symbol, interval, config), bars


def load_input_bars(
    data: Path | None, url: str, exchange: str, symbol: str, interval: str, start: Any, end: Any
) -> pd.DataFrame:
    from factors.bars import parse_utc

    if data is None:
        from store.bars import load_bars

        return load_bars(url, exchange, symbol, interval, start, end)
    from store.bar_files import read_bar_file

    frame, _gaps = read_bar_file(data, interval)
    lo, hi = parse_utc(start, "--start"), parse_utc(end, "--end")
    if lo is not None:
        frame = frame[frame.index >= lo]
    if hi is not None:
        frame = frame[frame.index <= hi]
    if frame.empty:
        raise UserError(
            f"no bars in {str(data)!r} between {start or 'the start'} and {end or 'the end'}; "
            "widen --start/--end"
        )
    return frame


def store_result(url: str, result: BacktestResult) -> None:
    from backtest.run import ENGINE_VERSION
    from store.runs import save_backtest_run

    run = {
        "run_id": result.run_id,
        "run_key": None,
        "instance_id": None,
        "strategy": result.strategy,
        "symbol": result.symbol,
        "interval": result.interval,
        "params": result.params,
        "start": result.start,
        "end": result.end,
        "bars": result.bars,
        "status": "done",
        "error": None,
        "metrics": result.metrics,
        "engine_version": ENGINE_VERSION,
    }
    save_backtest_run(url, run, result.trades, order_rows(result))


def order_rows(result: BacktestResult) -> list[dict[str, Any]]:
    """Order manager records in the shape of store.models.OrderRecord (ids unique per run)."""
    from actors.order_store import order_rows as rows

    return rows(result.orders, result.run_id)


def _config(
    cash: float,
    fee_bps: float,
    slippage_bps: float,
    risk: float,
    min_notional: float | None = None,
    lot_size: float = 0.0,
) -> BacktestConfig:
    from backtest.run import BacktestConfig

    try:
        return BacktestConfig(
            cash=cash,
            fee_bps=fee_bps,
            slippage_bps=slippage_bps,
            risk=risk,
            min_notional=min_notional,
            lot_size=lot_size,
        )
    except UserError as exc:
        raise UserError(str(exc).replace("backtest setting ", "option --")) from None


def _require(**given: Any) -> None:
    missing = [f"--{k}" for k, v in given.items() if v in (None, "")]
    if missing:
        raise UserError(
            f"backtest needs {', '.join(missing)}; e.g. cli.py backtest --strategy sr_breakout "
            "--symbol ETH/BTC --interval 5m --out out/ (or --all / --portfolio FILE)"
        )


def _run_all(
    url,
    out,
    family,
    symbol,
    interval,
    start,
    end,
    grid,
    ray_address,
    separate,
    config,
    exchange=None,
    keep_dashboard: bool = False,
) -> None:
    from backtest.fanout import run_all

    args = (
        url,
        out,
        family,
        symbol,
        interval,
        start,
        end,
        list(grid),
        ray_address,
        separate,
        config,
    )
    if not keep_dashboard:
        run_all(*args, exchange=exchange)
        return
    from cluster.ray_setup import ray_session

    console = Console(stderr=True)
    # Ray is started (or joined) here, around the run: run_all uses it and leaves it up
    with ray_session(ray_address, console=console, keep=True) as session:
        run_all(*args, exchange=exchange)
        _wait_for_ctrl_c(session, console)


def _wait_for_ctrl_c(session: Any, console: Console) -> None:
    """--keep-dashboard: Ray (and its dashboard) stay up until Ctrl-C."""
    import time

    if not session.started_here:
        console.print(f"the dashboard of the Ray cluster at {session.address} stays up with it")
        return
    if not session.dashboard_url:
        console.print("no dashboard to keep: it is off (RAYTRADER_DASHBOARD=0); stopping Ray")
        return
    console.print(
        f"run finished; Ray dashboard kept up at {session.dashboard_url} (the "
        "finished tasks and their logs); Ctrl-C stops Ray and ends the command"
    )
    try:
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        console.print("stopping Ray")


def _run_portfolio(
    path: Path, out, url, start, end, config, ray_address=None, use_ray=False, exchange="binance"
) -> None:
    from backtest.portfolio import run_portfolio_backtest

    run_portfolio_backtest(
        path, out, url, start, end, config, ray_address, use_ray, exchange=exchange
    )


def _summary(result: BacktestResult, out: Path, factors: bool = False) -> None:
    m = result.metrics
    total = m.get("total_return")
    text = f"{total:.2%}" if isinstance(total, float) else "n/a"
    from analysis.columns import quote_currency

    currency = quote_currency(result.symbol) or ""
    final = m.get("final_equity")
    money = f", equity {result.config.cash:,.2f} -> {final:,.2f} {currency}" if final else ""
    _out.print(
        f"{result.strategy} {result.symbol} {result.interval}: {result.bars} bars, "
        f"{len(result.trades)} trades, total return {text}{money}; wrote trades.csv, equity.csv, "
        f"results.json{', factors.csv' if factors else ''} to {out} (run {result.run_id})",
        highlight=False,
    )
    if m.get("annualised_note"):
        _out.print(f"note: {m['annualised_note']}; they are null in results.json", highlight=False)
