"""Property-based run of the OpenAPI document with schemathesis against the running bot: every
operation, generated parameters (valid and not), no 5xx, answers match the document."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.web.botthread import TOKEN, BotThread
from web.openapi import openapi_document

pytestmark = pytest.mark.realdata

schema = schemathesis.openapi.from_dict(openapi_document())
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@pytest.fixture(scope="module")
def fuzzed_bot(tmp_path_factory, stored_result) -> Iterator[BotThread]:
    """Its own bot: the generated calls arm, halt and close it."""
    from tests.web.conftest import _bot

    bot = _bot(tmp_path_factory.mktemp("fuzz"), stored_result).start()
    try:
        yield bot
    finally:
        bot.stop()


@schema.parametrize()
@settings(max_examples=10, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_openapi_document_holds_against_the_bot(case, fuzzed_bot: BotThread):
    response = case.call(base_url=fuzzed_bot.url + "/api/v1",
                         headers={"Authorization": f"Bearer {TOKEN}"})
    case.validate_response(response, checks=CHECKS)


def test_document_is_served_and_names_every_route(replayed_bot: BotThread):
    status, _, doc = replayed_bot.request("GET", "/api/v1/openapi.json")
    assert status == 200 and doc == openapi_document()
    assert {"/status", "/position", "/balance", "/trades", "/equity", "/candles", "/signals",
            "/risk", "/strategy", "/logs", "/settings", "/results", "/results/{result_id}",
            "/actions/{action}"} <= set(doc["paths"])
