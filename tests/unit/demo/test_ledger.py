"""Where the audit ledger lives: the table's Redis, or ``LEDGER_REDIS_URL``'s."""

from __future__ import annotations

import pytest
from celery import Celery

from rfqueue.demo.ledger import LEDGER_REDIS_URL, ledger_client


def address(client: object) -> tuple[str, int, int]:
    kwargs = client.connection_pool.connection_kwargs  # type: ignore[attr-defined]
    return kwargs["host"], kwargs["port"], kwargs["db"]


@pytest.mark.parametrize("patient", [True, False])
def test_the_ledger_is_in_the_tables_redis_by_default(monkeypatch, patient):
    monkeypatch.delenv(LEDGER_REDIS_URL, raising=False)
    app = Celery("ledger-default", broker="redis://127.0.0.1:6390/3", set_as_current=False)
    assert address(ledger_client(app, patient)) == ("127.0.0.1", 6390, 3)


@pytest.mark.parametrize("patient", [True, False])
def test_ledger_redis_url_puts_it_elsewhere(monkeypatch, patient):
    monkeypatch.setenv(LEDGER_REDIS_URL, "redis://127.0.0.2:6391/5")
    app = Celery("ledger-elsewhere", broker="redis://127.0.0.1:6390/3", set_as_current=False)
    assert address(ledger_client(app, patient)) == ("127.0.0.2", 6391, 5)
