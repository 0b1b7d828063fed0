# Every target works on a fresh clone: the virtual environment is created on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo ml-demo lint bench clean

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
	@echo "evaluation: demo_out/ml/eval/eval.csv, eval.html"

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
