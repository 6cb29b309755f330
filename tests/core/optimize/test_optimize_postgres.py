"""One study in a real PostgreSQL server, shared by workers of two `main.py optimize` runs (as
two machines would): every trial is counted once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna

from core.optimize.study import open_storage, storage_url
from tests.conftest import ROOT, shared_file


def test_workers_of_two_runs_share_one_postgres_study(postgres_dsn: str,
                                                      tmp_path: Path) -> None:
    data = str(shared_file("BTCUSDT-1m-2023-04-15.csv"))
    env = {**os.environ, "DATA_DIR": str(tmp_path / "data")}

    def run(jobs: int, trials: int, name: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "main.py", "optimize", data, "--strategy", "ema_adx", "--study",
             "shared", "--storage", postgres_dsn, "--jobs", str(jobs), "--trials", str(trials),
             "--out", str(tmp_path / name)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    machines = [run(2, 5, "a"), run(1, 3, "b")]
    for proc in machines:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert "best trial" in out
    study = optuna.load_study(study_name="shared",
                              storage=open_storage(storage_url(postgres_dsn, tmp_path), 10))
    trials = study.get_trials()
    assert all(t.state.is_finished() for t in trials)
    assert sorted(t.number for t in trials) == list(range(8))  # none lost, none twice
    assert len({t._trial_id for t in trials}) == 8
    assert len({t.user_attrs["worker"] for t in trials}) == 3
