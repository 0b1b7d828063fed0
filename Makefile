# Every target works on a fresh clone: the virtual environment is created on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test demo ml-demo live-demo lint bench clean browser

# `make install` (or any target on a fresh clone): the virtual environment, with progress.
install: $(STAMP)

$(STAMP): pyproject.toml
	@echo "==> [1/3] creating the virtual environment $(VENV) with $(PYTHON)"
	$(PYTHON) -m venv $(VENV)
	@echo "==> [2/3] installing uv, the installer (resolves and installs in parallel: ~10x pip's speed)"
	$(PY) -m pip install --progress-bar on uv
	@echo "==> [3/3] installing raytrader and its test and bench extras (ray, pandas, plotly, ccxt, ...): several hundred MB"
	$(VENV)/bin/uv pip install --python $(PY) -e ".[test,bench]"
	touch $(STAMP)
	@echo "==> installed: run the CLI as .venv/bin/python cli.py ... (or once: source .venv/bin/activate)"

# Headless Chromium for the HTML report's render test: Debian's package, installed only when
# /usr/bin/chromium is missing (needs root, as in CI); the test skips only when it is absent.
CHROMIUM ?= /usr/bin/chromium
APT_INSTALL := DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends
browser:
	@if [ -x $(CHROMIUM) ]; then \
		echo "browser: $(CHROMIUM) is installed"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "browser: $(CHROMIUM) missing: apt-get install chromium"; \
		$(APT_INSTALL) chromium || { apt-get update -q && $(APT_INSTALL) chromium; }; \
	else \
		echo "browser: $(CHROMIUM) missing and not root (or no apt-get): the render" \
			"test will skip; install it with: sudo apt-get install chromium"; \
	fi

test: $(STAMP) browser
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -q -n auto --dist loadfile --durations=15

# The demo: real Binance samples (research only) and a generated year of 1m bars on exchange
# "synthetic" (three USD pairs). On the synthetic market: every family x interval, weights chosen
# in-sample (trades before DEMO_SPLIT), the portfolio run in-sample and out-of-sample, one report;
# then the rolling selection (re-selected every 7 days on the 60 before) against random selections.
DEMO_SPLIT ?= 2025-09-01
demo: $(STAMP)
	$(PY) cli.py data demo
	$(PY) cli.py backtest --all --exchange binance --out demo_out/binance
	$(PY) cli.py backtest --all --exchange synthetic --out demo_out/synthetic
	$(PY) cli.py weights demo_out/synthetic --method sortino --split $(DEMO_SPLIT) --no-db --out demo_out/prod.json > demo_out/weights.txt; status=$$?; cat demo_out/weights.txt; exit $$status
	$(PY) cli.py backtest --portfolio demo_out/prod.json --exchange synthetic --end $(DEMO_SPLIT) --out demo_out/portfolio_in_sample
	$(PY) cli.py backtest --portfolio demo_out/prod.json --exchange synthetic --start $(DEMO_SPLIT) --out demo_out/portfolio_out_of_sample
	$(PY) cli.py analyze demo_out/portfolio_out_of_sample --compare demo_out/portfolio_in_sample --html demo_out/report.html > demo_out/report.txt
	$(PY) cli.py weights demo_out/synthetic --rolling --every 7d --lookback 60d --method sortino --out demo_out/rolling > demo_out/rolling.txt; status=$$?; cat demo_out/rolling.txt; exit $$status
	$(PY) cli.py analyze demo_out/rolling --html demo_out/rolling/report.html > /dev/null
	@echo
	@echo "real samples, every family x interval:  demo_out/binance/results.csv (one row per run)"
	@echo "synthetic market, every family x interval: demo_out/synthetic/results.csv, trades.csv"
	@echo "weights chosen before $(DEMO_SPLIT):        demo_out/prod.json (in/out-of-sample: demo_out/weights.txt)"
	@echo "portfolio in-sample / out-of-sample:    demo_out/portfolio_in_sample/, demo_out/portfolio_out_of_sample/"
	@echo "report (out-of-sample vs in-sample):    demo_out/report.html (text: demo_out/report.txt)"
	@echo "rolling selection (every 7d, lookback 60d) vs static, equal and random, PBO/DSR: demo_out/rolling.txt"
	@echo "rolling selection's account and report:  demo_out/rolling/ (comparison.csv, selections.csv, report.html)"

# Machine learning on the demo data (its own database): experiment -> train -> eval of the
# sr_breakout 5m instances; prints the without / with model / placebo / random-skip table.
ML_DB := sqlite:///demo_out/ml.db
ML_SELECT := --strategies all --family sr_breakout --interval 5m --folds 3 --db $(ML_DB)
ml-demo: $(STAMP)
	mkdir -p demo_out
	$(PY) cli.py data demo --db $(ML_DB) > /dev/null
	$(PY) cli.py model experiment $(ML_SELECT) --kinds logreg,rf,hgb --out demo_out/ml/experiment
	$(PY) cli.py model train $(ML_SELECT) --models-dir demo_out/ml/models
	$(PY) cli.py model eval $(ML_SELECT) --out demo_out/ml/eval
	@echo
	@echo "experiment: demo_out/ml/experiment/experiment.json, leaderboard.csv"
	@echo "models:     demo_out/ml/models (rows in table ml_models of demo_out/ml.db)"
	@echo "evaluation: demo_out/ml/eval/eval.csv, trades_by_model.csv, eval.html"

live-demo: $(STAMP)
	mkdir -p demo_out
	$(PY) cli.py data demo --db sqlite:///demo_out/live.db
	$(PY) -m live.demo --seconds 50 --speed 1200 --db sqlite:///demo_out/live.db

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: $(STAMP)
	$(PY) benchmarks/bars_load.py
	$(PY) benchmarks/factors_speed.py
	$(PY) benchmarks/startup.py
	$(PY) benchmarks/e2e.py
	$(PY) benchmarks/engine.py
	$(PY) benchmarks/fanout.py

clean:
	rm -rf $(VENV) .pytest_cache raytrader.db demo_out
