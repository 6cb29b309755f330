"""Optuna studies over the engine's backtest: storage, worker processes, one trial.

Each trial is ``core.backtest.runner.run_backtest`` with the trial's parameters applied to the
base settings, over data that each worker process loads once (``load_events``) and reuses for
every trial it runs. ``jobs`` worker processes (spawned, so each has its own interpreter and
memory) share one study through its storage; workers on other machines may join the same study
through PostgreSQL.

Storage: a SQLite file ``DATA_DIR/optuna.sqlite3`` by default, or any SQLAlchemy URL;
``postgresql://`` is run through psycopg 3 (``postgresql+psycopg://``). Every worker records a
heartbeat every ``heartbeat_s`` seconds; a trial whose worker died (killed, machine lost) is
marked FAIL by the next worker that starts a trial once its heartbeat is ``3 x heartbeat_s``
old, and its parameters are queued to run once more (Optuna's ``RetryFailedTrialCallback``):
the study goes on and loses no parameter set.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.optimize.objectives import OBJECTIVES, objective_value
from core.optimize.space import ParamRange, apply
from utils.settings import Settings

logger = logging.getLogger(__name__)

HEARTBEAT_GRACE = 3  # a trial is stale after this many missed heartbeats
OPEN_ATTEMPTS = 5


class StudyError(ValueError):
    """The study cannot run as asked (storage unreachable, a study made for another strategy or
    objective, no usable trial); one-line message."""


@dataclass(frozen=True, slots=True)
class StudySpec:
    """Everything a worker process needs (picklable).

    ``start_ms``/``end_ms`` restrict the backtest to ``start_ms <= ts_ms < end_ms``
    (walk-forward windows). ``settings`` are the base settings (``--param`` applied); ``fixed``
    the ``--param`` items as given (name -> text), reported with the best parameters.
    """

    study_name: str
    storage_url: str
    strategy: str
    objective: str
    ranges: tuple[ParamRange, ...]
    settings: Settings
    paths: tuple[str, ...]
    symbol: str | None = None
    min_trades: int = 1
    start_ms: int | None = None
    end_ms: int | None = None
    heartbeat_s: int = 10
    seed: int | None = None
    fixed: dict[str, str] = field(default_factory=dict)


def storage_url(storage: str | None, data_dir: Path) -> str:
    """The SQLAlchemy URL of ``--storage``, or the default SQLite file in ``data_dir``."""
    if not storage:
        return f"sqlite:///{(data_dir / 'optuna.sqlite3').resolve()}"
    if storage.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + storage.split("://", 1)[1]
    if "://" not in storage:  # a plain path: a SQLite file
        return f"sqlite:///{Path(storage).resolve()}"
    return storage


def _sqlite_creator(path: str) -> Callable[[], Any]:
    """Connections in WAL mode with ``synchronous=NORMAL``: several worker processes read while
    one writes, and a commit does not wait for an fsync (a power cut may lose the last trials,
    never corrupt the file)."""
    import sqlite3

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(path, timeout=120, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    return connect


def open_storage(url: str, heartbeat_s: int) -> Any:
    """An Optuna ``RDBStorage`` with heartbeats and one retry of a killed worker's trial.

    Raises:
        StudyError: the storage cannot be opened (one line, no credentials in it).
    """
    import warnings

    from optuna.exceptions import ExperimentalWarning
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    kwargs: dict[str, Any]
    if url.startswith("sqlite:///"):
        path = url.split("///", 1)[1]
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        kwargs = {"creator": _sqlite_creator(path)}
    else:
        kwargs = {"pool_pre_ping": True}
    # Workers (or machines) that start together race to create the schema: the loser sees an
    # IntegrityError or similar; by the next attempt the tables exist.
    for attempt in range(OPEN_ATTEMPTS):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ExperimentalWarning)
                return RDBStorage(
                    url, engine_kwargs=kwargs, heartbeat_interval=heartbeat_s,
                    grace_period=HEARTBEAT_GRACE * heartbeat_s,
                    heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1))
        except Exception as exc:  # noqa: BLE001  driver errors vary; one line, no URL secrets
            error = exc
            time.sleep(0.2 * (attempt + 1))
    where = url.split("@")[-1] if "@" in url else url.split("://")[0]
    raise StudyError(f"cannot open the study storage ({where}): {type(error).__name__}")


def _sampler(seed: int | None) -> Any:
    import optuna

    return optuna.samplers.TPESampler(seed=seed, constant_liar=True, multivariate=True)


def create_study(spec: StudySpec) -> Any:
    """Create the study or load it to resume; a resumed study must have been made for the same
    strategy and objective (``StudyError`` otherwise)."""
    import optuna

    if spec.objective not in OBJECTIVES:
        raise StudyError(f"unknown objective {spec.objective!r}; choose from "
                         f"{', '.join(OBJECTIVES)}")
    storage = open_storage(spec.storage_url, spec.heartbeat_s)
    study = optuna.create_study(study_name=spec.study_name, storage=storage,
                                direction="maximize", load_if_exists=True,
                                sampler=_sampler(spec.seed))
    attrs = study.user_attrs
    for key, value in (("strategy", spec.strategy), ("objective", spec.objective)):
        if key in attrs and attrs[key] != value:
            raise StudyError(f"study {spec.study_name!r} was made for {key} {attrs[key]!r}, not "
                             f"{value!r}; choose another --study name")
        study.set_user_attr(key, value)
    study.set_user_attr("space", {r.name: r.text() for r in spec.ranges})
    study.set_user_attr("data", list(spec.paths))
    return study


class TrialRunner:
    """The objective of one worker: data loaded once in ``__init__``, one backtest per call."""

    def __init__(self, spec: StudySpec) -> None:
        from core.backtest.runner import load_events
        from core.strategies.selection import load_strategy_plugins

        load_strategy_plugins(spec.settings)  # a spawned worker starts with the built-ins only
        self.spec = spec
        self.data = load_events(spec.settings, spec.paths, symbol=spec.symbol).window(
            spec.start_ms, spec.end_ms)
        self.pid = os.getpid()

    def params(self, trial: Any) -> dict[str, Any]:
        return {r.name: r.suggest(trial) for r in self.spec.ranges}

    def __call__(self, trial: Any) -> float:
        import optuna

        from core.backtest.runner import BacktestError, run_backtest

        spec = self.spec
        params = self.params(trial)
        trial.set_user_attr("worker", self.pid)
        settings = apply(spec.settings, spec.ranges, params)
        try:
            result = run_backtest(settings, spec.paths, data=self.data)
        except (ValueError, BacktestError) as exc:  # a combination the rule rejects (StrategyError)
            trial.set_user_attr("invalid", " ".join(str(exc).split())[:200])
            raise optuna.TrialPruned() from None
        trades = len(result.trades)
        net = sum((t.net_pnl for t in result.trades), 0)
        trial.set_user_attr("trades", trades)
        trial.set_user_attr("net_pnl", float(net))
        trial.set_user_attr("rss_mb", peak_rss_mb())
        if trades < spec.min_trades:
            trial.set_user_attr("invalid", f"{trades} trades < --min-trades {spec.min_trades}")
            raise optuna.TrialPruned()
        return objective_value(result, spec.objective)


def peak_rss_mb() -> float:
    """This process's peak resident memory, MB (Linux ``ru_maxrss`` is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def worker_main(spec: StudySpec, n_trials: int, worker_no: int) -> None:
    """Run ``n_trials`` trials of the study in this process (a spawned worker's entry point)."""
    import optuna

    _quiet_optuna()
    runner = TrialRunner(spec)
    storage = open_storage(spec.storage_url, spec.heartbeat_s)
    seed = None if spec.seed is None else spec.seed + worker_no
    study = optuna.load_study(study_name=spec.study_name, storage=storage,
                              sampler=_sampler(seed))
    study.optimize(runner, n_trials=n_trials, gc_after_trial=False)


def split_trials(total: int, jobs: int) -> list[int]:
    """``total`` trials over ``jobs`` workers, as evenly as possible (sum is ``total``)."""
    base, extra = divmod(total, jobs)
    return [base + (1 if i < extra else 0) for i in range(jobs) if base or i < extra]


def finished_count(study: Any) -> int:
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED,
              optuna.trial.TrialState.FAIL)
    return len(study.get_trials(deepcopy=False, states=states))


def run_study(spec: StudySpec, trials: int, jobs: int, *,
              progress: Callable[[int, int], None] | None = None) -> Any:
    """Run ``trials`` more trials of the study over ``jobs`` worker processes; the study.

    ``progress(done, total)`` is called about once a second while workers run. A worker that
    dies is reported in the log; the others go on (its running trial is failed by heartbeat).

    Raises:
        StudyError: bad storage, a mismatching study, or every worker failed.
    """
    if trials < 1 or jobs < 1:
        raise StudyError("--trials and --jobs must be >= 1")
    _quiet_optuna()
    study = create_study(spec)
    start = finished_count(study)
    shares = split_trials(trials, jobs)
    if len(shares) == 1:
        runner = TrialRunner(spec)
        cb = [] if progress is None else [
            lambda s, t: progress(finished_count(s) - start, trials)]
        study.optimize(runner, n_trials=shares[0], callbacks=cb)
        return study
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=worker_main, args=(spec, n, i), name=f"optimize-worker-{i}")
             for i, n in enumerate(shares)]
    for p in procs:
        p.start()
    try:
        while any(p.is_alive() for p in procs):
            for p in procs:
                p.join(timeout=1.0 / len(procs))
            if progress is not None:
                progress(finished_count(study) - start, trials)
    except KeyboardInterrupt:
        for p in procs:
            p.join(timeout=10)
        raise
    failed = [p for p in procs if p.exitcode != 0]
    for p in failed:
        logger.warning("%s exited with code %s", p.name, p.exitcode)
    if len(failed) == len(procs):
        raise StudyError(f"every optimize worker failed (exit codes "
                         f"{', '.join(str(p.exitcode) for p in procs)})")
    return study


def wall_clock_trials_per_min(study: Any, since: float | None = None) -> float:
    """Finished trials per minute between the first start and the last completion."""
    import optuna

    done = [t for t in study.get_trials(deepcopy=False)
            if t.state != optuna.trial.TrialState.RUNNING and t.datetime_complete]
    if since is not None:
        done = [t for t in done if t.datetime_start.timestamp() >= since]
    if len(done) < 2:
        return 0.0
    t0 = min(t.datetime_start for t in done).timestamp()
    t1 = max(t.datetime_complete for t in done).timestamp()
    return len(done) / max(t1 - t0, 1e-9) * 60


def now_s() -> float:
    return time.time()
