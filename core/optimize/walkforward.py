"""Walk-forward validation: optimise on an in-sample window, then trade the best parameters on
the out-of-sample window that follows, fold after fold.

Windows (rolling, non-anchored): fold ``i`` (0-based) trains on ``[t0 + i*T, t0 + i*T + D)``
and tests on the next ``T``, where ``t0`` is the first event of the data, ``D`` the train length
and ``T`` the test length. Without ``--train-days``/``--test-days`` the data's span is cut so
that ``D = 2T`` and ``D + K*T`` is the whole span; with one of them the other fills the span.
Each fold is its own study (``<study>-wf<i>``), so a walk-forward resumes like a study does.

The out-of-sample backtest starts cold (indicators warm up inside the window, as a bot
restarted at that moment would). The stitched out-of-sample equity chains the folds: each
fold's curve is scaled to start where the previous fold ended, so it reads as one account that
re-optimised at every fold boundary.

Overfitting warning: a fold whose in-sample objective is positive and whose out-of-sample
objective is below ``OVERFIT_RATIO`` (50 %) of it, or negative, is flagged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from core.optimize.objectives import objective_value
from core.optimize.space import apply
from core.optimize.study import StudyError, StudySpec, run_study

DAY_MS = 86_400_000
OVERFIT_RATIO = 0.5


@dataclass(frozen=True, slots=True)
class Fold:
    """One fold's windows, ms since the epoch, half-open ``[start, end)``."""

    index: int
    train_start_ms: int
    train_end_ms: int
    test_end_ms: int


@dataclass(frozen=True, slots=True)
class FoldResult:
    """``is_value``: best in-sample objective; ``oos_value``: the same parameters' objective on
    the out-of-sample window (None when the fold had no completed trial or no OOS events)."""

    fold: Fold
    params: dict[str, Any]
    is_value: float | None
    oos_value: float | None
    oos_trades: int
    oos_net_pnl: float
    oos_equity: list[tuple[int, float]]

    @property
    def overfit(self) -> bool:
        if self.is_value is None or self.oos_value is None or self.is_value <= 0:
            return False
        return self.oos_value < OVERFIT_RATIO * self.is_value


def make_folds(first_ms: int, last_ms: int, k: int, *, train_ms: int | None = None,
               test_ms: int | None = None) -> list[Fold]:
    """The ``k`` folds over ``[first_ms, last_ms]`` (see the module docstring).

    Raises:
        StudyError: k < 1, a non-positive length, or windows longer than the data.
    """
    span = last_ms - first_ms
    if k < 1:
        raise StudyError("--walk-forward needs K >= 1 folds")
    if train_ms is None and test_ms is None:
        test_ms = span // (k + 2)
        train_ms = 2 * test_ms
    elif train_ms is None:
        assert test_ms is not None
        train_ms = span - k * test_ms
    elif test_ms is None:
        test_ms = (span - train_ms) // k
    assert train_ms is not None and test_ms is not None
    if train_ms <= 0 or test_ms <= 0 or train_ms + k * test_ms > span + 1:
        need = (max(train_ms, 0) + k * max(test_ms, 0)) / DAY_MS
        raise StudyError(f"{k} folds of {max(train_ms, 0) / DAY_MS:g} train + "
                         f"{max(test_ms, 0) / DAY_MS:g} test days need {need:g} days of data; "
                         f"the data covers {span / DAY_MS:.3g}")
    return [Fold(i, first_ms + i * test_ms, first_ms + i * test_ms + train_ms,
                 first_ms + i * test_ms + train_ms + test_ms) for i in range(k)]


def stitch(results: list[FoldResult], initial: float) -> list[tuple[int, float]]:
    """The out-of-sample equity of all folds as one curve starting at ``initial`` USDT."""
    out: list[tuple[int, float]] = []
    level = initial
    for r in results:
        if not r.oos_equity:
            continue
        base = r.oos_equity[0][1] or initial
        seg = [(ts, level * eq / base) for ts, eq in r.oos_equity]
        out.extend(seg)
        level = seg[-1][1]
    return out


def run_walk_forward(spec: StudySpec, trials: int, jobs: int, k: int, *,
                     train_ms: int | None = None, test_ms: int | None = None,
                     on_fold: Callable[[FoldResult], None] | None = None) -> list[FoldResult]:
    """Optimise each fold's in-sample window with ``trials`` trials over ``jobs`` workers, then
    backtest its best parameters out of sample. ``on_fold`` is called after each fold.

    Raises:
        StudyError: bad windows, storage or study (see ``run_study``).
    """
    from core.backtest.runner import BacktestError, load_events, run_backtest
    from core.optimize.report import completed

    data = load_events(spec.settings, spec.paths, symbol=spec.symbol).window(
        spec.start_ms, spec.end_ms)
    folds = make_folds(data.first_ts_ms, data.last_ts_ms, k, train_ms=train_ms, test_ms=test_ms)
    results: list[FoldResult] = []
    for fold in folds:
        fspec = replace(spec, study_name=f"{spec.study_name}-wf{fold.index}",
                        start_ms=fold.train_start_ms, end_ms=fold.train_end_ms)
        study = run_study(fspec, trials, jobs)
        best = completed(study)
        params = dict(best[0].params) if best else {}
        is_value = best[0].value if best else None
        oos_value, trades, net, curve = None, 0, 0.0, []
        if best:
            settings = apply(spec.settings, spec.ranges, params)
            try:
                res = run_backtest(settings, spec.paths, data=data,
                                   start_ms=fold.train_end_ms, end_ms=fold.test_end_ms)
            except BacktestError:
                res = None
            if res is not None:
                oos_value = objective_value(res, spec.objective)
                trades = len(res.trades)
                net = float(sum((t.net_pnl for t in res.trades), 0))
                curve = [(res.first_ts_ms, float(res.initial_balance)), *res.equity_curve]
        fr = FoldResult(fold, params, is_value, oos_value, trades, net, curve)
        results.append(fr)
        if on_fold is not None:
            on_fold(fr)
    return results


def fold_table(results: list[FoldResult], objective: str) -> str:
    """One line per fold: windows, IS vs OOS objective, OOS trades and net PnL, a warning."""
    from datetime import UTC, datetime

    def day(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")

    def num(v: float | None) -> str:
        return "-" if v is None else f"{v:.4g}"

    head = ["fold", "train from", "test from", "test to", f"IS {objective}",
            f"OOS {objective}", "OOS trades", "OOS net USDT", ""]
    rows = [[str(r.fold.index), day(r.fold.train_start_ms), day(r.fold.train_end_ms),
             day(r.fold.test_end_ms), num(r.is_value), num(r.oos_value), str(r.oos_trades),
             f"{r.oos_net_pnl:.2f}", "OVERFIT?" if r.overfit else ""] for r in results]
    widths = [max(len(x[i]) for x in [head, *rows]) for i in range(len(head))]
    fmt = "  ".join(f"{{:>{w}}}" for w in widths)
    return "\n".join([fmt.format(*head), *(fmt.format(*r) for r in rows)]).rstrip()


def walk_forward_json(results: list[FoldResult], initial: float) -> dict[str, Any]:
    return {
        "folds": [{"fold": r.fold.index, "train_start_ms": r.fold.train_start_ms,
                   "train_end_ms": r.fold.train_end_ms, "test_end_ms": r.fold.test_end_ms,
                   "params": r.params, "is_value": r.is_value, "oos_value": r.oos_value,
                   "oos_trades": r.oos_trades, "oos_net_pnl": r.oos_net_pnl,
                   "overfit": r.overfit} for r in results],
        "oos_equity": stitch(results, initial),
    }
