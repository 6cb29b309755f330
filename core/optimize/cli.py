"""``main.py optimize``: build the study spec from the arguments, run the study or the
walk-forward, print and write the results. Printing lives here, not in the study code."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from core.optimize.space import check_bounds, strategy_space
from core.optimize.study import StudyError, StudySpec, run_study, storage_url
from utils.settings import Settings

DAY_MS = 86_400_000


def _progress(total_label: str) -> Any:
    """A tqdm bar on a terminal (stderr), else None."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm  # type: ignore[import-untyped]

    bar = tqdm(total=0, desc=total_label, unit="trial", file=sys.stderr, leave=False)

    def show(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    show.bar = bar  # type: ignore[attr-defined]
    return show


def default_study_name(strategy: str, objective: str, paths: list[str]) -> str:
    stem = Path(paths[0]).name.split(".")[0] if paths else "data"
    more = f"+{len(paths) - 1}" if len(paths) > 1 else ""
    return f"{strategy}-{objective}-{stem}{more}"


def build_spec(args: argparse.Namespace, settings: Settings, fixed: dict[str, str],
               paths: list[str]) -> StudySpec:
    """The study spec of an ``optimize`` command line.

    Raises:
        SpaceError: a bad ``--space``; StudyError: bad counts.
    """
    if args.trials < 1 or args.jobs < 1:
        raise StudyError("--trials and --jobs must be >= 1")
    if args.min_trades < 0:
        raise StudyError("--min-trades must be >= 0")
    ranges = strategy_space(settings.strategy, args.space)
    fixed = {k: v for k, v in fixed.items() if k not in {r.name for r in ranges}}
    check_bounds(settings.strategy, ranges)
    name = args.study or default_study_name(settings.strategy, args.objective, paths)
    return StudySpec(
        study_name=name, storage_url=storage_url(args.storage, settings.data_dir),
        strategy=settings.strategy, objective=args.objective, ranges=tuple(ranges),
        settings=settings, paths=tuple(paths), symbol=args.symbol, min_trades=args.min_trades,
        heartbeat_s=settings.optimize_heartbeat_s, seed=args.seed, fixed=fixed)


def run_optimize(args: argparse.Namespace, settings: Settings, *, fixed: dict[str, str],
                 paths: list[str], start_ms: int | None = None,
                 end_ms: int | None = None) -> int:
    """Run ``optimize`` over ``paths`` (restricted to ``[start_ms, end_ms)``) and print the
    outcome; exit status 0, or 1 with no completed trial."""
    from dataclasses import replace

    from core.optimize import report

    for p in paths:
        if not Path(p).is_file():
            raise StudyError(f"{p}: no such data file")
    spec = replace(build_spec(args, settings, fixed, paths), start_ms=start_ms, end_ms=end_ms)
    out_dir = args.out or settings.data_dir / "optimize" / spec.study_name
    if args.walk_forward:
        return _walk_forward(args, spec, out_dir)
    progress = _progress(spec.study_name)
    try:
        study = run_study(spec, args.trials, args.jobs, progress=progress)
    finally:
        if progress is not None:
            progress.bar.close()
    counts = report.state_counts(study)
    print(f"study {spec.study_name}: " + ", ".join(f"{v} {k.lower()}"
                                                   for k, v in sorted(counts.items())))
    print(report.top_table(study, args.top))
    best = report.completed(study)
    doc = report.study_json(study, top=args.top)
    report.write_json(out_dir / "result.json", doc)
    if not best:
        print(f"No completed trial (all pruned by --min-trades {spec.min_trades} or rejected); "
              f"JSON written to {out_dir / 'result.json'}")
        return 1
    params = {**spec.fixed, **best[0].params}
    header = f"{spec.strategy} {spec.objective}={best[0].value:.6g} study {spec.study_name}"
    rule_names = {r.name for r in spec.ranges if r.rule} | _rule_names(spec.strategy)
    env = report.env_fragment(spec.strategy, params, rule_names, header)
    (out_dir / "best.env").write_text(env, "utf-8")
    charts = report.write_charts(study, out_dir)
    print()
    print(f"best trial {best[0].number}: {spec.objective} = {best[0].value:.6g}")
    print(f"  main.py backtest {' '.join(paths)} --strategy {spec.strategy} "
          f"{report.param_line(params)}")
    print(".env fragment:")
    print(env, end="")
    print(f"written: {out_dir / 'result.json'}, {out_dir / 'best.env'}"
          + "".join(f", {c}" for c in charts))
    return 0


def _rule_names(strategy: str) -> set[str]:
    from core.strategies.catalog import ENSEMBLE, get_spec

    return set() if strategy == ENSEMBLE else set(get_spec(strategy).params)


def _walk_forward(args: argparse.Namespace, spec: StudySpec, out_dir: Path) -> int:
    from core.optimize import report
    from core.optimize.walkforward import (
        fold_table,
        run_walk_forward,
        stitch,
        walk_forward_json,
    )

    def on_fold(r: Any) -> None:
        iv = "-" if r.is_value is None else f"{r.is_value:.4g}"
        ov = "-" if r.oos_value is None else f"{r.oos_value:.4g}"
        print(f"fold {r.fold.index}: IS {spec.objective} {iv}, OOS {ov}, "
              f"{r.oos_trades} OOS trades", file=sys.stderr)

    train = None if args.train_days is None else int(args.train_days * DAY_MS)
    test = None if args.test_days is None else int(args.test_days * DAY_MS)
    results = run_walk_forward(spec, args.trials, args.jobs, args.walk_forward,
                               train_ms=train, test_ms=test, on_fold=on_fold)
    initial = float(spec.settings.initial_balance)
    print(fold_table(results, spec.objective))
    stitched = stitch(results, initial)
    if stitched:
        final = stitched[-1][1]
        print(f"stitched out-of-sample equity: {initial:.2f} -> {final:.2f} USDT "
              f"({(final / initial - 1) * 100:+.2f} %)")
    overfit = [r.fold.index for r in results if r.overfit]
    if overfit:
        print(f"warning: out-of-sample {spec.objective} fell below half of in-sample in fold(s) "
              f"{', '.join(map(str, overfit))}: the parameters look overfitted")
    doc = {"study": spec.study_name, "strategy": spec.strategy, "objective": spec.objective,
           **walk_forward_json(results, initial)}
    report.write_json(out_dir / "walk_forward.json", doc)
    written = [out_dir / "walk_forward.json"]
    if stitched:
        from utils.charts import render_equity_curve, write_chart

        png = out_dir / "walk_forward_equity.png"
        write_chart(png, render_equity_curve(stitched, f"{spec.study_name}: stitched "
                                                       f"out-of-sample equity"))
        written.append(png)
    print("written: " + ", ".join(map(str, written)))
    return 0 if any(r.oos_value is not None for r in results) else 1
