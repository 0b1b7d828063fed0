"""`cli.py backtest` (filled in by the event engine)."""


def backtest() -> None:
    raise NotImplementedError
