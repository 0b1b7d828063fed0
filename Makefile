# Every target works on a fresh clone: the virtual environment is created on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test demo lint bench clean

# `make install` (or any target on a fresh clone): the virtual environment, with progress.
install: $(STAMP)

$(STAMP): pyproject.toml
	@echo "==> [1/3] creating the virtual environment $(VENV) with $(PYTHON)"
	$(PYTHON) -m venv $(VENV)
	@echo "==> [2/3] upgrading pip"
	$(PY) -m pip install --progress-bar on --upgrade pip
	@echo "==> [3/3] installing raytrader and its test and bench extras (ray, pandas, plotly, ccxt, ...): several hundred MB, a few minutes on a fresh machine"
	$(PY) -m pip install --progress-bar on -e ".[test,bench]"
	touch $(STAMP)
	@echo "==> installed: run the CLI as .venv/bin/python cli.py ... (or once: source .venv/bin/activate)"

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q

# The demo: real Binance samples (research only) and a generated year of 1m bars on exchange
# "synthetic" (three USD pairs). On the synthetic market: every family x interval, weights chosen
# in-sample (trades before DEMO_SPLIT), the portfolio run in-sample and out-of-sample, one report.
DEMO_SPLIT ?= 2025-09-01
demo: $(STAMP)
	$(PY) cli.py data demo
	$(PY) cli.py backtest --all --exchange binance --out demo_out/binance
	$(PY) cli.py backtest --all --exchange synthetic --out demo_out/synthetic
	$(PY) cli.py weights demo_out/synthetic --method sortino --split $(DEMO_SPLIT) --no-db --out demo_out/prod.json > demo_out/weights.txt; status=$$?; cat demo_out/weights.txt; exit $$status
	$(PY) cli.py backtest --portfolio demo_out/prod.json --exchange synthetic --end $(DEMO_SPLIT) --out demo_out/portfolio_in_sample
	$(PY) cli.py backtest --portfolio demo_out/prod.json --exchange synthetic --start $(DEMO_SPLIT) --out demo_out/portfolio_out_of_sample
	$(PY) cli.py analyze demo_out/portfolio_out_of_sample --compare demo_out/portfolio_in_sample --html demo_out/report.html > demo_out/report.txt
	@echo
	@echo "real samples, every family x interval:  demo_out/binance/results.csv (one row per run)"
	@echo "synthetic market, every family x interval: demo_out/synthetic/results.csv, trades.csv"
	@echo "weights chosen before $(DEMO_SPLIT):        demo_out/prod.json (in/out-of-sample: demo_out/weights.txt)"
	@echo "portfolio in-sample / out-of-sample:    demo_out/portfolio_in_sample/, demo_out/portfolio_out_of_sample/"
	@echo "report (out-of-sample vs in-sample):    demo_out/report.html (text: demo_out/report.txt)"

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: $(STAMP)
	$(PY) benchmarks/bars_load.py
	$(PY) benchmarks/factors_speed.py
	$(PY) benchmarks/engine.py
	$(PY) benchmarks/fanout.py

clean:
	rm -rf $(VENV) .pytest_cache raytrader.db demo_out
