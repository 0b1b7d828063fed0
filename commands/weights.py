"""`cli.py weights`."""


def weights() -> None:
    raise NotImplementedError
