"""cluster/ray_setup.py: a local Ray whose raylet misses Ray's fixed 30 s to register (a busy
machine: it failed one suite run) is stopped and started once more; any other failure is not
retried. ray.init is replaced here, since a real Ray cannot be made that slow on demand."""

from __future__ import annotations

import pytest

from cluster import ray_reaper, ray_setup

TIMED_OUT = Exception(
    "The current node timed out during startup. This could happen because some of the raylet "
    "failed to startup or the GCS has become overloaded."
)


@pytest.fixture
def calls(monkeypatch) -> dict[str, list]:
    import ray

    seen: dict[str, list] = {"init": [], "shutdown": [], "killed": []}
    monkeypatch.setattr(ray, "shutdown", lambda: seen["shutdown"].append(True))
    monkeypatch.setattr(ray_reaper, "sweep_stale", lambda: 0)
    monkeypatch.setattr(ray_reaper, "start_watchdog", lambda marker: None)
    monkeypatch.setattr(ray_reaper, "kill_marked", lambda marker: seen["killed"].append(marker))
    monkeypatch.setattr(ray_setup, "secure_token_file", lambda create: None)
    return seen


def fake_init(seen: dict[str, list], failures: list[Exception]):
    def init(**options):
        seen["init"].append(options)
        if failures:
            raise failures.pop(0)
        return "context"

    return init


def test_a_raylet_that_timed_out_is_started_once_more(calls, monkeypatch, caplog) -> None:
    import ray

    monkeypatch.setattr(ray, "init", fake_init(calls, [TIMED_OUT]))
    assert ray_setup._start_local(False, 2) == "context"
    assert len(calls["init"]) == 2 and calls["init"][0] == calls["init"][1]
    assert calls["shutdown"] == [True] and len(calls["killed"]) == 1  # the first one's processes
    assert "did not start in time" in caplog.text


@pytest.mark.parametrize(
    "failures",
    [
        [TIMED_OUT, TIMED_OUT],  # twice: Ray's own error, not a third try
        [ValueError("port in use")],  # another failure: no retry
    ],
)
def test_other_failures_and_a_second_timeout_are_raised(calls, monkeypatch, failures) -> None:
    import ray

    expected = failures[-1]
    monkeypatch.setattr(ray, "init", fake_init(calls, list(failures)))
    with pytest.raises(type(expected)) as raised:
        ray_setup._start_local(False, 2)
    assert raised.value is expected
    assert len(calls["init"]) == len(failures)
