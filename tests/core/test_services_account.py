"""Services.account(): the account snapshot port /balance and the metrics read, the same for
the paper exchange and a live connection (which reports it through EquitySnapshot events)."""

from __future__ import annotations

from decimal import Decimal

from core.events import EquitySnapshot
from core.services import Services
from tests.conftest import eventually
from tests.fakes.ports import FakeExchange
from utils.settings import load_settings

D = Decimal


def test_live_account_is_the_exchanges_latest_snapshot_with_its_unrealized_pnl(tmp_path):
    settings = load_settings(_env_file=None, data_dir=tmp_path)
    services = Services(settings, feed=None, persist=False,
                        connection_factory=lambda bus: FakeExchange(bus, {}))
    assert services.paper is None
    assert services.account() is None and services.equity() is None
    snap = EquitySnapshot(equity=D("10012.5"), wallet_balance=D("10000"),
                          unrealized_pnl=D("12.5"), ts_ms=1_700_000_000_000)
    services.engine.bus.publish(snap)
    assert services.account() == snap
    assert services.equity() == D("10012.5")


def test_paper_account_is_computed_now(tmp_path):
    settings = load_settings(_env_file=None, data_dir=tmp_path, initial_balance="2500")
    services = Services(settings, feed=None, persist=False)
    account = services.account()
    assert account is not None and services.paper is not None
    assert (account.wallet_balance, account.unrealized_pnl, account.equity) == (
        D("2500"), D("0"), D("2500"))


async def test_live_balance_refresh_reads_the_exchange_account_with_its_unrealized_pnl(tmp_path):
    settings = load_settings(_env_file=None, data_dir=tmp_path)
    exchange: list[FakeExchange] = []

    def connect(bus):
        exchange.append(FakeExchange(bus, {}))
        return exchange[-1]

    services = Services(settings, feed=None, persist=False, connection_factory=connect)
    (fake,) = exchange
    fake.clock.ms = 1_700_000_123_000
    assert services.now_ms() == 1_700_000_123_000  # exchange server time, not the wall clock
    fake.account = EquitySnapshot(equity=D("9990.25"), wallet_balance=D("10000"),
                                  unrealized_pnl=D("-9.75"), ts_ms=fake.clock.ms)
    services.refresh_balance()  # what the balance-refresh job and a closed trade do
    await eventually(lambda: services.account() is not None, timeout=2)
    assert fake.account_reads == 1
    assert services.account() == fake.account and services.equity() == D("9990.25")
