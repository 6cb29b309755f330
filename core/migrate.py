"""Open the store of record, migrating the JSON files of earlier versions on first start.

Before the store, DATA_DIR held ``state.json`` (engine state), ``ledger.json`` (running trades,
order intents) and ``paper_account.json``. On the first start with a store that has none of
their documents, each file present is read and validated like a stored document, all are
written in one transaction, then each file is renamed ``<name>.migrated`` (kept, never read
again). A bad file stops the start (``PersistError`` naming the file and field) and nothing is
changed: a trader upgrading with a running position keeps it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from core.event_bus import EventBus
from core.ledger import LEDGER_KEY, Ledger
from core.paper_account import PAPER_KEY, validate_paper_account
from core.persisted import PersistError
from core.state import STATE_KEY, EngineState
from core.store import Store, StoreError
from utils.settings import Settings

logger = logging.getLogger(__name__)

LEGACY_FILES = {"state.json": STATE_KEY, "ledger.json": LEDGER_KEY,
                "paper_account.json": PAPER_KEY}


def _validate(key: str, doc: Any, where: str) -> dict[str, Any]:
    if key == STATE_KEY:
        return EngineState.from_doc(doc, where).to_dict()
    if key == LEDGER_KEY:
        ledger = Ledger(EventBus())
        ledger.restore(doc, where)
        return ledger.snapshot()
    return dict(validate_paper_account(doc, where), version=1)


def store_for(settings: Settings) -> Store:
    """The store of record for ``settings``: in the SQLite journal's file
    (``DATA_DIR/journal.sqlite3``), or, when the journal is in PostgreSQL (``JOURNAL_URL``), in
    ``DATA_DIR/store.sqlite3`` (documents only; the journal's rows then go to PostgreSQL in its
    own batches, not in the state's transaction).

    Raises:
        PersistError: see ``open_store``.
    """
    if settings.journal_url is None:
        return open_store(settings.data_dir, settings.db_path, account=settings.account)
    return open_store(settings.data_dir, settings.data_dir / "store.sqlite3",
                      account=settings.account, journal=False)


def open_store(data_dir: Path, db_path: Path, *, account: str = "main",
               journal: bool = True) -> Store:
    """The store at ``db_path``, with the legacy JSON files of ``data_dir`` migrated into it.

    Raises:
        PersistError: the database or a legacy file is invalid (nothing was changed).
    """
    store = Store.open(db_path, account=account, journal=journal)
    try:
        present = {name: key for name, key in LEGACY_FILES.items()
                   if (data_dir / name).exists()}
        if not present:
            return store
        if any(store.get(key) is not None for key in LEGACY_FILES.values()):
            logger.warning("ignoring %s in %s: the store %s already holds the state",
                           ", ".join(present), data_dir, db_path)
            return store
        docs: dict[str, Any] = {}
        for name, key in present.items():
            path = data_dir / name
            try:
                raw = json.loads(path.read_text("utf-8"))
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                raise PersistError(f"{path}: field '(document)' is not readable JSON"
                                   f" ({type(exc).__name__}); fix it or move it aside, then"
                                   " restart (nothing was changed)") from None
            docs[key] = _validate(key, raw, str(path))
        if not store.write(docs):
            raise StoreError(f"cannot migrate {', '.join(present)} into {db_path}:"
                             f" {store.last_error}")
        for name in present:
            (data_dir / name).replace(data_dir / f"{name}.migrated")
        logger.warning("migrated %s into %s (originals kept as *.migrated)",
                       ", ".join(present), db_path)
        return store
    except BaseException:
        store.abandon()
        raise
