# Every target works on a fresh clone: the virtual environment is created on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test,bench]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q

demo: $(STAMP)
	$(PY) cli.py data demo
	$(PY) cli.py strategies list
	$(PY) cli.py backtest --all --out demo_out/all
	$(PY) cli.py weights demo_out/all --method binary --min-trades 10 --no-db --out demo_out/prod.json
	$(PY) cli.py backtest --portfolio demo_out/prod.json --out demo_out/portfolio
	$(PY) cli.py analyze demo_out/portfolio --html demo_out/report.html > demo_out/report.txt
	@echo
	@echo "every family x interval: demo_out/all/results.csv (one row per run), demo_out/all/trades.csv"
	@echo "production config:      demo_out/prod.json (instances with sortino > 0, expectancy > 0, >= 10 trades)"
	@echo "portfolio backtest:     demo_out/portfolio/ (trades.csv, equity.csv, results.json, portfolio_trades.csv)"
	@echo "report:                 demo_out/report.html (text: demo_out/report.txt)"

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
