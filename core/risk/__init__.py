"""RISK: the pre-trade guardian between TRENDING and ORDERING, and the kill switch.

* ``limits``: thresholds (``RiskLimits``) and the pure checks of a proposed entry.
* ``book``: the running figures (day's realized PnL, equity peak, loss streak, entries).
* ``guardian``: the bus module (``RiskGuardian``).
* ``view``: read models for /risk, the dashboard, /status and the backtest report.
"""

from core.risk.guardian import RiskGuardian
from core.risk.limits import KILL_LIMITS, Breach, RiskLimits

__all__ = ["KILL_LIMITS", "Breach", "RiskGuardian", "RiskLimits"]
