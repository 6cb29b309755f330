"""The README's table: every catalog rule's default backtest (and the default ensemble) on the
shared BTCUSDT 1m and XRPUSDT 5m klines.

    .venv/bin/python bench/strategy_table.py

Each cell is exactly ``main.py backtest FILE --strategy ID`` with the default settings
(1,000 USDT, leverage 5, 10 % of the balance as margin, taker fee 0.05 %, slippage 0.01 %);
prints a Markdown table: trades, net PnL, fees, max drawdown, profit factor.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.backtest.report import check_invariants, compute_stats  # noqa: E402
from core.backtest.runner import run_backtest  # noqa: E402
from core.strategies.catalog import catalog  # noqa: E402
from utils.settings import load_settings  # noqa: E402

FILES = ("BTCUSDT-1m-2023-04-15.csv", "XRPUSDT-5m-2021-11-15.csv")


def data_dir() -> Path:
    for d in (ROOT.parent / "shared" / "data" / "binance-usdm",
              ROOT.parent.parent / "shared" / "data" / "binance-usdm",
              Path("/work/shared/data/binance-usdm")):
        if d.is_dir():
            return d
    raise SystemExit("shared data not found")


def main() -> int:
    print("| strategy | data | trades | net PnL (USDT) | fees (USDT) | max drawdown | "
          "profit factor |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for rule in (*catalog(), "ensemble"):
        for name in FILES:
            result = run_backtest(load_settings(strategy=rule), [data_dir() / name])
            check_invariants(result)
            s = compute_stats(result)
            pf = "-" if s.profit_factor is None else f"{s.profit_factor:.2f}"
            print(f"| {rule} | {name.split('-')[0]} {name.split('-')[1]} | {s.trades} | "
                  f"{s.net_pnl:+.2f} | {s.fees:.2f} | {s.max_drawdown:.2%} | {pf} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
