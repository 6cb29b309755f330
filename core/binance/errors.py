"""Binance errors that say what to do (STYLE.md §9).

``classify`` maps a Binance error (code, message, HTTP or WS API status, Retry-After) to one
exception class per decision:

* ``RetryLater``: certainly not executed; back off (``retry_after_s`` when Binance said) and
  retry. ``IpBanned`` (HTTP 418) is the long version: stop all requests until it lifts.
* ``UnknownOutcome``: may or may not have executed (-1006, -1007, timeouts, HTTP 503 "Unknown
  error..."). Query by client order id; never resend blindly (STYLE.md §6).
* ``Rejected``: the exchange refused this request (-2019 margin, -4164 notional, -1111
  precision...). Tell the user; retrying the same request fails the same way.
* ``ClockSkew`` (-1021): resync with ``GET /fapi/v1/time``, then retry (not executed).
* ``InvalidListenKey`` (-1125): create a new listenKey (POST), reconnect the user stream.
* ``Fatal``: the credentials are wrong (-2015, -1022, HTTP 401). Halt; a human must fix it.

Codes: shared/binance/PROTOCOL.md §5 (Binance USDⓈ-M error-code page, General Info page).
Messages are scrubbed: API keys, listenKeys and signatures never appear in ``str(exc)``.
"""

from __future__ import annotations

import re
import time
from typing import Any

_SECRET_PARAM = re.compile(
    r"(?i)\b(signature|apikey|api_key|x-mbx-apikey|listenkey|secret)(\"?\s*[=:]\s*\"?)[^&\s\",}]+"
)
_LONG_TOKEN = re.compile(r"[A-Za-z0-9+/=_-]{40,}")


def scrub(text: str) -> str:
    """Redact key/signature-like material from a message (parameters and long tokens)."""
    text = _SECRET_PARAM.sub(lambda m: f"{m.group(1)}{m.group(2)}<redacted>", text)
    return _LONG_TOKEN.sub("<redacted>", text)


class ExchangeError(Exception):
    """An error answer from Binance (or no answer at all).

    Attributes:
        code: Binance error code (negative int), or None (HTTP-level error, timeout).
        msg: Binance's message, scrubbed of secrets.
        http_status: HTTP status, or the WS API ``status``; 0 when there was no response.
        retry_after_s: seconds Binance asked us to wait (Retry-After / retryAfter), or None.
    """

    def __init__(self, msg: str = "", *, code: int | None = None, http_status: int = 0,
                 retry_after_s: float | None = None) -> None:
        self.code = code
        self.msg = scrub(msg)
        self.http_status = http_status
        self.retry_after_s = retry_after_s
        super().__init__(self.msg)

    def __str__(self) -> str:
        where = f"HTTP {self.http_status}" if self.http_status else "no response"
        code = f"{self.code}" if self.code is not None else "no code"
        wait = f", retry after {self.retry_after_s:g}s" if self.retry_after_s is not None else ""
        return f"Binance {code} ({where}{wait}): {self.msg}"

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(code={self.code!r}, http_status={self.http_status!r}, "
                f"msg={self.msg!r})")

    def __reduce__(self):  # keep keyword attributes through pickling (multiprocessing, logging)
        return (_rebuild, (type(self), self.msg, self.code, self.http_status, self.retry_after_s))


def _rebuild(cls: type[ExchangeError], msg: str, code: int | None, status: int,
             retry: float | None) -> ExchangeError:
    return cls(msg, code=code, http_status=status, retry_after_s=retry)


class RetryLater(ExchangeError):
    """Not executed; retry after ``retry_after_s`` (or your own backoff when None)."""


class IpBanned(RetryLater):
    """HTTP 418: the IP is auto-banned (2 min to 3 days). Send nothing until it lifts."""


class UnknownOutcome(ExchangeError):
    """The request may have executed. Reconcile by client order id; do not resend blindly."""


class ClockSkew(ExchangeError):
    """-1021: timestamp outside recvWindow. Resync the clock, then retry (not executed)."""


class InvalidListenKey(ExchangeError):
    """-1125: the listenKey does not exist (expired). Create a new one and reconnect."""


class Fatal(ExchangeError):
    """Bad API key, signature or permissions. Halt trading; a human must fix the setup."""


class Rejected(ExchangeError):
    """The exchange refused the request; the same request will fail again. Tell the user."""


class InsufficientMargin(Rejected):
    """-2019 Margin is insufficient (-2018 balance insufficient)."""


class MinNotionalRejected(Rejected):
    """-4164 order notional below MIN_NOTIONAL (reduce-only orders are exempt)."""


class BadPrecision(Rejected):
    """-1111 price or quantity has more decimals than allowed (not rounded to the filters)."""


class WouldImmediatelyTrigger(Rejected):
    """-2021 algo/trailing trigger price is already on the wrong side of the price."""


class ReduceOnlyRejected(Rejected):
    """-2022 reduce-only order would not reduce the position (-4118 its margin check failed)."""


class PositionSideMismatch(Rejected):
    """-4061 positionSide does not match the account's one-way/hedge mode."""


class UseAlgoOrder(Rejected):
    """-4120 conditional order types must go through the Algo Order API (since 2025-12-09)."""


class PriceOutOfBounds(Rejected):
    """-4131 / -4016 / -4024 price outside the PERCENT_PRICE band around the mark price."""


class OrderNotFound(Rejected):
    """-2011 cancel rejected (unknown order) / -2013 order does not exist."""


class NoChangeNeeded(Rejected):
    """-4046 / -4059: the margin type / position mode is already what was asked (a success for
    an idempotent setup step)."""


_BY_CODE: dict[int, type[ExchangeError]] = {
    -1000: UnknownOutcome, -1001: UnknownOutcome, -1006: UnknownOutcome, -1007: UnknownOutcome,
    -1003: RetryLater, -1008: RetryLater,
    -1015: RetryLater,
    -1004: Rejected,  # DUPLICATE_IP in USDⓈ-M ("already on the white list"): not retryable
    -5028: RetryLater,
    -1021: ClockSkew,
    -1125: InvalidListenKey,
    -1002: Fatal, -1022: Fatal, -2014: Fatal, -2015: Fatal,
    -2018: InsufficientMargin, -2019: InsufficientMargin,
    -4164: MinNotionalRejected,
    -1111: BadPrecision,
    -2021: WouldImmediatelyTrigger,
    -2022: ReduceOnlyRejected, -4118: ReduceOnlyRejected,
    -4061: PositionSideMismatch,
    -4120: UseAlgoOrder,
    -4131: PriceOutOfBounds, -4016: PriceOutOfBounds, -4024: PriceOutOfBounds,
    -2011: OrderNotFound, -2013: OrderNotFound,
    -4046: NoChangeNeeded, -4059: NoChangeNeeded,
}

_BANNED_UNTIL = re.compile(r"banned until (\d{12,14})")

UNKNOWN_ERROR_503 = "Unknown error, please check your request or try again later."


def classify(code: int | None, msg: str, http_status: int,
             retry_after: float | None = None) -> ExchangeError:
    """Build the exception that says what to do about a Binance error answer.

    Args:
        code: Binance ``code`` from the body / WS ``error.code``; None if absent.
        msg: Binance ``msg`` (scrubbed before it is stored).
        http_status: HTTP status, WS API ``status``, or 0 when no response came (timeout).
        retry_after: seconds from the ``Retry-After`` header / WS ``retryAfter``, if any.

    Order of rules: HTTP 418 is always ``IpBanned``; an HTTP 503 is decided by its message
    ("Unknown error..." -> UnknownOutcome, "Service Unavailable" -> RetryLater) unless it carries
    -1008; then the code table; then the HTTP status (429 RetryLater, 401 Fatal, 408/5xx/none
    UnknownOutcome, other 4xx Rejected). Unknown codes on a 4xx are ``Rejected``.
    """
    kw: dict[str, Any] = {"code": code, "http_status": http_status, "retry_after_s": retry_after}
    lowered = msg.lower()
    if http_status == 418 or (code == -1003 and "banned" in lowered):
        if retry_after is None:  # "IP banned until 1706...": wait until then
            until = _BANNED_UNTIL.search(msg)
            if until is not None:
                kw["retry_after_s"] = max(0.0, int(until.group(1)) / 1000 - time.time())
        return IpBanned(msg, **kw)
    if http_status == 503 and code != -1008:
        if "unknown error" in lowered:
            return UnknownOutcome(msg, **kw)
        if "service unavailable" in lowered:
            return RetryLater(msg, **kw)
    if code is not None and code in _BY_CODE:
        return _BY_CODE[code](msg, **kw)
    if http_status == 429:
        return RetryLater(msg, **kw)
    if http_status == 401:
        return Fatal(msg, **kw)
    if http_status == 0 or http_status == 408 or http_status >= 500:
        return UnknownOutcome(msg, **kw)
    return Rejected(msg, **kw)


def timeout_error(what: str, seconds: float) -> UnknownOutcome:
    """The error for a request that got no answer in time (its outcome is unknown)."""
    return UnknownOutcome(f"no response to {what} within {seconds:g}s", http_status=0)
