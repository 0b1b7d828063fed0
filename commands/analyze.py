"""`cli.py analyze`."""


def analyze() -> None:
    raise NotImplementedError
