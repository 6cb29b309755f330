"""main.py optimize on the shared day of BTCUSDT 1m klines, with a SQLite study."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import optuna
import pytest

import main
from core.backtest.runner import run_backtest
from core.optimize.objectives import objective_value
from core.optimize.space import apply, strategy_space
from core.optimize.study import StudyError, open_storage
from core.strategies.selection import params_from_settings
from tests.conftest import ROOT, shared_file
from utils.settings import load_settings

KLINES = "BTCUSDT-1m-2023-04-15.csv"


@pytest.fixture(autouse=True)
def _data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))


def _optimize(tmp_path: Path, *extra: str, trials: int = 6, study: str = "s") -> int:
    return main.main(["optimize", str(shared_file(KLINES)), "--strategy", "ema_adx",
                      "--trials", str(trials), "--study", study, "--seed", "7",
                      "--out", str(tmp_path / "out"), *extra])


def _study(tmp_path: Path, name: str = "s") -> optuna.Study:
    url = f"sqlite:///{tmp_path / 'data' / 'optuna.sqlite3'}"
    return optuna.load_study(study_name=name, storage=open_storage(url, 10))


def _finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials() if t.state.is_finished()]


def test_best_params_reproduce_in_backtest_and_outputs_are_written(tmp_path: Path,
                                                                   capsys) -> None:
    assert _optimize(tmp_path, "--objective", "net_pnl", trials=8) == 0
    out = capsys.readouterr().out
    doc = json.loads((tmp_path / "out" / "result.json").read_text())
    best = doc["best"]
    assert doc["trials"]["COMPLETE"] + doc["trials"].get("PRUNED", 0) == 8
    assert best["param_line"] in out
    for name, png in (("history", 1), ("importances", 1), ("params", 1)):
        assert (tmp_path / "out" / f"{name}.png").read_bytes()[:4] == b"\x89PNG", (name, png)
    # the .env fragment is a valid settings file and the backtest with it scores the same
    env = dict(line.split("=", 1) for line in
               (tmp_path / "out" / "best.env").read_text().splitlines()
               if line and not line.startswith("#"))
    assert env["STRATEGY"] == "ema_adx"
    settings = load_settings(**{k.lower(): v for k, v in env.items()}, trading_mode="paper")
    assert int(params_from_settings(settings)["ema_fast"]) == best["params"]["ema_fast"]
    result = run_backtest(settings, [shared_file(KLINES)])
    assert objective_value(result, "net_pnl") == pytest.approx(best["value"])
    assert len(result.trades) == best["trades"]
    rows = [line for line in out.splitlines() if line.strip()[:2].strip().isdigit()]
    assert len(rows) >= 1


def test_study_resumes_and_trial_counts_add_up(tmp_path: Path) -> None:
    assert _optimize(tmp_path, trials=4) == 0
    assert _optimize(tmp_path, trials=3) == 0
    trials = _finished(_study(tmp_path))
    assert sorted(t.number for t in trials) == list(range(7))


def test_resume_with_another_objective_is_refused(tmp_path: Path, capsys) -> None:
    assert _optimize(tmp_path, trials=2) == 0
    capsys.readouterr()
    assert _optimize(tmp_path, "--objective", "calmar", trials=2) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: study 's' was made for objective 'sharpe'") and "\n" not in err


def test_data_is_loaded_once_per_worker(tmp_path: Path, monkeypatch) -> None:
    import core.replay.source as source

    opened = []
    real_init = source.ReplaySource.__init__

    def counting_init(self, *a, **kw):
        opened.append(a)
        real_init(self, *a, **kw)

    monkeypatch.setattr(source.ReplaySource, "__init__", counting_init)
    assert _optimize(tmp_path, trials=5, study="once") == 0
    assert len(opened) == 1
    assert len(_finished(_study(tmp_path, "once"))) == 5


def test_two_worker_processes_share_the_study(tmp_path: Path) -> None:
    assert _optimize(tmp_path, "--jobs", "2", trials=6, study="par") == 0
    trials = _finished(_study(tmp_path, "par"))
    assert sorted(t.number for t in trials) == list(range(6))
    assert len({t.user_attrs["worker"] for t in trials}) == 2
    assert all(t.user_attrs["worker"] != os.getpid() for t in trials)


def test_min_trades_prunes_every_trial_and_exits_1(tmp_path: Path, capsys) -> None:
    assert _optimize(tmp_path, "--min-trades", "100000", trials=3, study="few") == 1
    doc = json.loads((tmp_path / "out" / "result.json").read_text())
    assert doc["best"] is None and doc["trials"] == {"PRUNED": 3}


@pytest.mark.parametrize("args", [["--space", "ema_fast=9:3"], ["--space", "leverage=0:3"],
                                  ["--space", "nope=1:2"], ["--param", "nope=1"],
                                  ["--trials", "0"], ["--strategy", "nope"]])
def test_bad_arguments_are_one_line_exit_2(tmp_path: Path, capsys, args: list[str]) -> None:
    assert main.main(["optimize", str(shared_file(KLINES)), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err


def _beating(tmp_path: Path, study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """RUNNING trials whose worker has recorded a heartbeat (a worker killed between creating
    a trial and its first heartbeat leaves a trial Optuna cannot tell from a live one)."""
    with closing(sqlite3.connect(tmp_path / "data" / "optuna.sqlite3")) as db:
        ids = {row[0] for row in db.execute("SELECT trial_id FROM trial_heartbeats")}
    return [t for t in study.get_trials()
            if t.state == optuna.trial.TrialState.RUNNING and t._trial_id in ids]


def test_killed_worker_trial_is_failed_and_the_study_goes_on(tmp_path: Path) -> None:
    env = {**os.environ, "DATA_DIR": str(tmp_path / "data"), "OPTIMIZE_HEARTBEAT_S": "1"}
    proc = subprocess.Popen(
        [sys.executable, "main.py", "optimize", str(shared_file(KLINES)), "--strategy",
         "ema_adx", "--trials", "100000", "--study", "k", "--out", str(tmp_path / "o")],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        storage = None
        deadline = time.monotonic() + 60
        running = None
        while running is None:  # stop the worker while one of its trials is RUNNING
            assert time.monotonic() < deadline, "the worker never ran a trial"
            assert proc.poll() is None
            if storage is None and (tmp_path / "data" / "optuna.sqlite3").exists():
                try:
                    storage = _study(tmp_path, "k")
                except (KeyError, StudyError):  # tables or study not created yet
                    continue
            if storage is None:
                continue
            if _beating(tmp_path, storage):
                proc.send_signal(signal.SIGSTOP)
                now = _beating(tmp_path, storage)
                if now:
                    running = now[0]
                else:
                    proc.send_signal(signal.SIGCONT)
        proc.kill()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    study = _study(tmp_path, "k")
    before = len(_finished(study))
    hb = open_storage(f"sqlite:///{tmp_path / 'data' / 'optuna.sqlite3'}", 1)
    deadline = time.monotonic() + 30
    # wait on the storage's own notion of a dead worker (heartbeat older than the grace period)
    while running._trial_id not in hb._get_stale_trial_ids(study._study_id):
        assert time.monotonic() < deadline, "the dead trial never became stale"
    os.environ["OPTIMIZE_HEARTBEAT_S"] = "1"
    try:
        assert _optimize(tmp_path, trials=3, study="k") == 0
    finally:
        del os.environ["OPTIMIZE_HEARTBEAT_S"]
    trials = _study(tmp_path, "k").get_trials()
    dead = trials[running.number]
    assert dead.state == optuna.trial.TrialState.FAIL
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == running.number]
    # the parameters the dead trial had drawn are run again (the rest are drawn afresh)
    assert len(retried) == 1 and dead.params.items() <= retried[0].params.items()
    assert retried[0].state.is_finished()
    assert len([t for t in trials if t.state.is_finished()]) == before + 1 + 3


def test_walk_forward_reports_each_fold_and_stitches_oos_equity(tmp_path: Path,
                                                                capsys) -> None:
    assert _optimize(tmp_path, "--walk-forward", "2", "--objective", "net_pnl", trials=4,
                     study="wf") == 0
    doc = json.loads((tmp_path / "out" / "walk_forward.json").read_text())
    folds = doc["folds"]
    assert [f["fold"] for f in folds] == [0, 1]
    day = 86_400_000
    for f in folds:  # D = 2T and 2 + 2 test windows span the day
        assert f["train_end_ms"] - f["train_start_ms"] == 2 * (f["test_end_ms"]
                                                               - f["train_end_ms"])
        assert abs((f["test_end_ms"] - f["train_end_ms"]) - day / 4) < 120_000
    assert folds[1]["train_start_ms"] == folds[0]["train_start_ms"] + (
        folds[0]["test_end_ms"] - folds[0]["train_end_ms"])
    # each fold's OOS figure is the backtest of its best IS parameters on its test window
    settings = apply(load_settings(trading_mode="paper"), strategy_space("ema_adx"),
                     folds[1]["params"])
    oos = run_backtest(settings, [shared_file(KLINES)], start_ms=folds[1]["train_end_ms"],
                       end_ms=folds[1]["test_end_ms"])
    assert objective_value(oos, "net_pnl") == pytest.approx(folds[1]["oos_value"])
    assert folds[1]["overfit"] == (folds[1]["is_value"] > 0
                                   and folds[1]["oos_value"] < 0.5 * folds[1]["is_value"])
    eq = doc["oos_equity"]
    assert eq[0][1] == 1000.0 and folds[0]["train_end_ms"] <= eq[0][0] < folds[0]["test_end_ms"]
    assert (tmp_path / "out" / "walk_forward_equity.png").exists()
    out = capsys.readouterr().out
    assert "IS net_pnl" in out and "stitched out-of-sample equity" in out
    studies = optuna.get_all_study_names(
        storage=f"sqlite:///{tmp_path / 'data' / 'optuna.sqlite3'}")
    assert sorted(studies) == ["wf-wf0", "wf-wf1"]
