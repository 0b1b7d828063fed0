"""Reading an experiment's best combination back (ml/experiment.py load_best)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import UserError
from ml.experiment import load_best
from ml.models import ModelSpec


def test_the_best_combination_comes_back_as_written(tmp_path: Path) -> None:
    spec = ModelSpec(kind="rf", selection="mi")
    (tmp_path / "experiment.json").write_text(json.dumps({"best": spec.as_dict()}))
    assert load_best(tmp_path) == spec


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "is not an experiment.json"),
        ("[1, 2]", "is not an experiment.json"),
        ('{"best": null}', "has no best combination"),
    ],
)
def test_a_broken_experiment_file_is_a_user_error(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "experiment.json").write_text(text)
    with pytest.raises(UserError, match=message):
        load_best(tmp_path)


def test_a_missing_experiment_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="run `cli.py model experiment --out DIR` first"):
        load_best(tmp_path / "nothing")
