"""ml/models.py, ml/fitness.py and ml/walkforward.py on small generated datasets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.dataset import Dataset
from ml.fitness import choose_threshold, score_all, trade_sortino
from ml.models import KINDS, SELECTIONS, ModelSpec, fit
from ml.walkforward import WalkForwardError, make_folds, min_trades, placebo_labels, walk_forward

MINUTE = 60 * 10**9


def toy_dataset(n: int = 300, effect: bool = True, seed: int = 0) -> Dataset:
    """Trades one hour apart, each lasting 90 minutes; with `effect` a trade wins iff x > 0."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    noise = pd.DataFrame(rng.normal(size=(n, 4)), columns=[f"n{i}" for i in range(4)])
    won = (x > 0) if effect else (rng.random(n) < 0.5)
    returns = np.where(won, 0.01, -0.01)
    signal = np.arange(n, dtype=np.int64) * 60 * MINUTE
    features = pd.concat([pd.DataFrame({"x": x}), noise], axis=1)
    ids = np.arange(n)
    return Dataset(features, won.astype(np.int64), returns, signal, signal + 90 * MINUTE, ids)


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_learns_a_clear_effect_and_is_reproducible(kind):
    ds = toy_dataset()
    train, test = ds.subset(np.arange(200)), ds.subset(np.arange(210, 300))
    spec = ModelSpec(kind=kind, time_budget=3.0)
    p = fit(train.features, train.won, spec).predict_proba(test.features)
    assert score_all(test.won, p, test.returns, 0.5)["roc_auc"] > 0.9
    if kind != "flaml":  # FLAML's search stops on time as well as on trials
        again = fit(train.features, train.won, spec).predict_proba(test.features)
        assert np.array_equal(p, again)


@pytest.mark.parametrize("selection", SELECTIONS)
def test_every_selection_keeps_the_informative_feature(selection):
    ds = toy_dataset()
    model = fit(ds.features, ds.won, ModelSpec(kind="logreg", selection=selection))
    assert "x" in model.columns


def test_nothing_relevant_gives_a_constant_model_at_the_win_rate():
    ds = toy_dataset(effect=False)
    model = fit(ds.features[["n0", "n1"]], ds.won, ModelSpec(kind="logreg", selection="fdr"))
    assert model.columns == []
    assert np.all(model.predict_proba(ds.features) == ds.won.mean())


def test_trade_sortino_and_threshold_are_hand_checkable():
    # mean 0.005; downside sqrt((0 + 0.01^2 + 0 + 0.01^2) / 4) = sqrt(5e-5)
    assert trade_sortino(np.array([0.02, -0.01, 0.02, -0.01])) == pytest.approx(0.005 / 5e-5**0.5)
    p = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9] * 3)
    returns = np.where(p > 0.5, 0.01, -0.01) + np.tile([0, 0, 0, 0, 0, 0, 0, -0.015], 3)
    threshold = choose_threshold(p, returns)
    assert 0.4 < threshold <= 0.6  # keeps exactly the p > 0.5 trades


def test_folds_are_in_time_order_with_a_purge_at_least_the_longest_trade():
    ds = toy_dataset()
    folds = make_folds(ds, n_folds=3)
    for fold in folds:
        begin = ds.signal_ns[fold.test[0]]
        assert (ds.exit_ns[fold.train] < begin).all()
        assert (ds.signal_ns[fold.train] <= begin - ds.longest_trade_ns()).all()
        assert fold.train.max() < fold.test.min()
    # trades are 60 min apart and last 90 min: the trade 60 min before a block ends inside it
    # and is purged; the one 120 min before ended 30 min before the block and is kept
    assert len(folds[0].train) == folds[0].test[0] - 1
    tested = np.concatenate([f.test for f in folds])
    assert (np.diff(tested) == 1).all() and tested[0] == int(len(ds) * 0.4)


def test_walk_forward_scores_only_out_of_sample_and_placebo_scores_chance():
    ds = toy_dataset(n=400)
    spec = ModelSpec(kind="logreg")
    real = walk_forward(ds, spec, n_folds=3)
    assert real.oos_rows[0] == int(len(ds) * 0.4) and len(real.oos_p) == len(ds) - 160
    assert real.scores["roc_auc"] > 0.95
    # a placebo model's random slope on x gives an AUC far from 0.5 either way (the label is a
    # function of x), but on average over seeds it is chance, and always below the real one
    placebo = [
        walk_forward(ds, spec, 3, 0.4, *placebo_labels(ds, seed)).scores["roc_auc"]
        for seed in range(5)
    ]
    assert abs(np.mean(placebo) - 0.5) < 0.1 and max(placebo) < real.scores["roc_auc"]


def test_placebo_shuffles_labels_and_returns_together():
    ds = toy_dataset()
    won, returns = placebo_labels(ds, seed=3)
    assert not np.array_equal(won, ds.won)
    assert np.array_equal(won == 1, returns > 0)  # each label keeps its own return


def test_the_application_method_decides_what_the_trading_fitness_scores():
    # filter takes only the trades the model expects to win; size takes every trade (losers
    # at a smaller size): with a clear effect the filter's expectancy is the win return itself
    ds = toy_dataset()
    filt = walk_forward(ds, ModelSpec(kind="logreg", method="filter"), 3).scores
    size = walk_forward(ds, ModelSpec(kind="logreg", method="size"), 3).scores
    assert filt["expectancy"] == pytest.approx(0.01, abs=1e-3)
    assert 0 < size["expectancy"] < filt["expectancy"]
    assert filt["roc_auc"] == size["roc_auc"]  # the same models: only the application differs


def test_experiment_methods_are_a_combination_axis():
    from ml.experiment import ExperimentSettings

    combos = ExperimentSettings(
        kinds=("logreg",), selections=("none",), methods=("filter", "kelly")
    ).combinations()
    assert [c.label for c in combos] == ["logreg/none/filter", "logreg/none/kelly"]


def test_too_few_trades_say_how_many_are_needed_whatever_the_folds():
    # trades 60 min apart, 90 min long: the first fold trains on int(0.4 n) trades minus the one
    # the purge drops, so 39 trades give 15 - 1 = 14 (< 15) and 40 give 16 - 1 = 15, for any
    # number of folds: fewer folds never help, so the message must not advise them
    for n_folds in (2, 4, 20):
        with pytest.raises(WalkForwardError) as refused:
            make_folds(toy_dataset(39), n_folds=n_folds)
        assert str(refused.value).startswith(
            "39 trades are too few: walk-forward trains its first fold on the first 40% of the "
            "trades (14 after the purge) and needs >= 15, so at least 38 trades"
        )
        assert "fewer folds" not in str(refused.value)
        assert len(make_folds(toy_dataset(40), n_folds=n_folds)[0].train) == 15
    assert min_trades(0.4) == 38 and int(38 * 0.4) == 15 and int(37 * 0.4) == 14
