"""Parameter search over the real engine's backtest: Optuna studies (SQLite or PostgreSQL),
worker processes, objectives, walk-forward validation and the reports they produce.

Optuna and matplotlib are imported only here (and only when a study runs), never on the bot's
trading path.
"""
