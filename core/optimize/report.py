"""What a finished study prints and writes: the best parameters (as ``--param`` flags and as a
``.env`` fragment), a top-N table, a JSON document and PNG charts (optimization history,
parameter importances, objective over the two most important parameters).

Charts use Optuna's matplotlib backend on the non-interactive Agg canvas; importances are
PED-ANOVA's (Optuna's default evaluator; fANOVA would need scikit-learn).
"""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def completed(study: Any) -> list[Any]:
    """COMPLETE trials, best first (the study maximises)."""
    import optuna

    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return sorted(done, key=lambda t: (-(t.value if t.value is not None else -math.inf),
                                       t.number))


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def param_line(params: dict[str, Any]) -> str:
    """``--param ema_fast=5 --param sl_atr=1.5`` for ``main.py backtest``."""
    return " ".join(f"--param {k}={_fmt(v)}" for k, v in params.items())


def env_fragment(strategy: str, params: dict[str, Any], rule_names: set[str],
                 header: str = "") -> str:
    """``.env`` lines: ``STRATEGY``, the strategy's parameters as ``STRATEGY_PARAMS=k=v,...``
    and each setting as ``NAME=value`` (a comment line first when ``header`` is given)."""
    lines = [f"# {header}"] if header else []
    lines.append(f"STRATEGY={strategy}")
    rule = [f"{k}={_fmt(v)}" for k, v in params.items() if k in rule_names]
    if rule:
        lines.append("STRATEGY_PARAMS=" + ",".join(rule))
    lines += [f"{k.upper()}={_fmt(v)}" for k, v in params.items() if k not in rule_names]
    return "\n".join(lines) + "\n"


def state_counts(study: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


def top_table(study: Any, n: int = 10) -> str:
    """The ``n`` best trials: rank, trial number, objective, trades, net PnL and parameters."""
    best = completed(study)[:n]
    if not best:
        return "No completed trial."
    names = list(best[0].params)
    head = ["#", "trial", study.user_attrs.get("objective", "value"), "trades", "net USDT", *names]
    rows = [[str(i + 1), str(t.number), f"{t.value:.4g}", str(t.user_attrs.get("trades", "")),
             f"{t.user_attrs.get('net_pnl', 0.0):.2f}", *(_fmt(t.params.get(k)) for k in names)]
            for i, t in enumerate(best)]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    fmt = "  ".join(f"{{:>{w}}}" for w in widths)
    return "\n".join([fmt.format(*head), *(fmt.format(*r) for r in rows)])


def study_json(study: Any, *, top: int = 10, extra: dict[str, Any] | None = None
               ) -> dict[str, Any]:
    """The study as a JSON-ready dict: best trial, top trials, counts, settings of the run."""
    best = completed(study)
    doc: dict[str, Any] = {
        "study": study.study_name,
        "strategy": study.user_attrs.get("strategy"),
        "objective": study.user_attrs.get("objective"),
        "space": study.user_attrs.get("space"),
        "data": study.user_attrs.get("data"),
        "trials": state_counts(study),
        "best": None,
        "top": [{"number": t.number, "value": t.value, "params": t.params,
                 "trades": t.user_attrs.get("trades"), "net_pnl": t.user_attrs.get("net_pnl")}
                for t in best[:top]],
    }
    if best:
        b = best[0]
        doc["best"] = {"number": b.number, "value": b.value, "params": b.params,
                       "trades": b.user_attrs.get("trades"),
                       "net_pnl": b.user_attrs.get("net_pnl"),
                       "param_line": param_line(b.params)}
    if extra:
        doc.update(extra)
    return doc


def write_json(path: Path, doc: dict[str, Any]) -> None:
    """Write ``doc`` atomically (temp file + rename)."""
    from utils.files import write_json_atomic

    write_json_atomic(path, doc, indent=2)


def importances(study: Any) -> dict[str, float]:
    """Parameter importances (Optuna's default PED-ANOVA evaluator), most important first;
    empty when not computable."""
    import optuna

    if len(completed(study)) < 2:
        return {}
    try:
        return dict(optuna.importance.get_param_importances(study))
    except (RuntimeError, ValueError, ZeroDivisionError) as exc:
        logger.info("no parameter importances: %s", exc)
        return {}


def _scatter2(study: Any, names: list[str]) -> Any:
    """Objective over the two parameters ``names``: one dot per completed trial, coloured by
    the objective (the best trial ringed)."""
    import matplotlib.pyplot as plt

    done = [t for t in completed(study) if all(n in t.params for n in names)]
    fig, ax = plt.subplots()
    xs = [t.params[names[0]] for t in done]
    ys = [t.params[names[1]] for t in done]
    vs = [t.value for t in done]
    sc = ax.scatter(xs, ys, c=vs, cmap="viridis", s=36, edgecolors="none")
    if done:
        ax.scatter([xs[0]], [ys[0]], s=140, facecolors="none", edgecolors="red", linewidths=1.5,
                   label=f"best ({vs[0]:.4g})")
        ax.legend(loc="best")
    fig.colorbar(sc, ax=ax, label=study.user_attrs.get("objective", "objective"))
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    ax.set_title(f"{study.study_name}: objective vs the two most important parameters")
    return ax


def write_charts(study: Any, out_dir: Path) -> list[Path]:
    """history.png, importances.png and params.png in ``out_dir``; the files written.

    A chart that needs more completed trials than there are (importances need two, the
    parameter chart two parameters that vary) is left out.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as ovm
    from optuna.exceptions import ExperimentalWarning

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if not completed(study):
        return written
    ranked = list(importances(study))
    jobs: list[tuple[str, Any]] = [("history.png", lambda: ovm.plot_optimization_history(study))]
    if ranked:
        jobs.append(("importances.png", lambda: ovm.plot_param_importances(study)))
    if len(ranked) >= 2:
        jobs.append(("params.png", lambda: _scatter2(study, ranked[:2])))
    for name, draw in jobs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            warnings.simplefilter("ignore", UserWarning)
            try:
                ax = draw()
            except (ValueError, RuntimeError, IndexError) as exc:
                logger.info("chart %s skipped: %s", name, exc)
                continue
        fig = ax.flat[0].figure if hasattr(ax, "flat") else ax.figure
        fig.set_size_inches(9, 6)
        fig.tight_layout()
        path = out_dir / name
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written
