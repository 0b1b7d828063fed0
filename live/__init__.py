"""Live trading: the node, its session and the venue adapters (docs/live.md).

Every process of a live node (the CLI, each Ray actor) reaches ccxt through this package, so it
loads ccxt's exchange modules on first use instead of all ~300 of them (live/venues/ccxt_loader.py:
0.8 s of CPU instead of 4.5 s per process).
"""

from live.venues.ccxt_loader import install as _install_slim_ccxt

_install_slim_ccxt()
