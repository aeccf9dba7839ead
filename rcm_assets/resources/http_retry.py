"""HTTP for the reference APIs: a rate limit, timeouts, and retries with backoff and jitter.

Every call of every reference client goes through `ApiHttp.send`, in replay and live mode alike
(only the httpx transport differs), so what the tests prove against a local server is what runs
against the real registries. Errors name the source and the URL path; secrets (client secret,
access token) are scrubbed from every message, since a server may echo what it was sent.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from rcm_assets.errors import RcmError

# Transient by nature: throttling and server-side trouble. 4xx other than 429 means the request
# itself is wrong and sending it again cannot help.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# A server asking for a longer pause than this is treated as down, not as throttling.
MAX_RETRY_AFTER_SECONDS = 120.0
REDACTED = "***"


class ApiError(RcmError):
    """A reference API call failed for good; the message names the source and the URL path."""


def scrub(message: str, secrets: Iterable[str | None]) -> str:
    """The message with every (non-trivial) secret replaced by `***`."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            message = message.replace(secret, REDACTED)
    return message


def url_path(url: str | httpx.URL) -> str:
    """Path and query of a URL, for messages: never the host's credentials or a fragment."""
    parts = urlsplit(str(url))
    return parts.path + (f"?{parts.query}" if parts.query else "")


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), if usable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter; a server's Retry-After is the floor of the wait."""

    max_retries: int
    backoff_seconds: float
    max_backoff_seconds: float = 60.0

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds before retry number `retry` (0-based)."""
        ceiling = min(self.max_backoff_seconds, self.backoff_seconds * 2**retry)
        # "Equal jitter": half fixed, half random, so clients that failed together spread out
        # without any retry coming back immediately.
        wait = ceiling / 2 + random.uniform(0, ceiling / 2)
        if retry_after is not None:
            wait = max(wait, min(retry_after, MAX_RETRY_AFTER_SECONDS))
        return wait


class RateLimiter:
    """At most `per_second` request starts per second, shared by every thread of one client."""

    def __init__(
        self,
        per_second: float | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = 1.0 / per_second if per_second else 0.0
        self._clock, self._sleep = clock, sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
        # Sleep outside the lock: each thread has reserved its own slot already.
        if slot > now:
            self._sleep(slot - now)


@dataclass
class HttpStats:
    """Counts for asset metadata and progress logs (updated from several threads)."""

    requests: int = 0
    retries: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def add(self, requests: int = 0, retries: int = 0) -> None:
        with self._lock:
            self.requests += requests
            self.retries += retries


class ApiHttp:
    """One source's HTTP session: rate limited, timed out, retried; errors scrubbed."""

    def __init__(
        self,
        label: str,
        client: httpx.Client,
        policy: RetryPolicy,
        limiter: RateLimiter,
        log: logging.Logger | None = None,
        secrets: Callable[[], Iterable[str | None]] = tuple,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.label = label
        self.client = client
        self.policy = policy
        self.limiter = limiter
        self.log = log or logging.getLogger(__name__)
        self.stats = HttpStats()
        self._secrets = secrets
        self._sleep = sleep

    def error(self, message: str) -> ApiError:
        return ApiError(scrub(f"{self.label}: {message}", self._secrets()))

    def send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """The response to a request, retrying transient failures; raise ApiError when they last.

        Non-transient responses (2xx, 4xx other than 429) are returned for the caller to judge.
        """
        target = url_path(httpx.URL(url, params=params))
        for attempt in range(self.policy.max_retries + 1):
            self.limiter.acquire()
            self.stats.add(requests=1)
            retry_after = None
            try:
                response = self.client.request(
                    method, url, params=params, data=data, headers=headers
                )
            except httpx.TimeoutException as error:
                problem = f"timed out ({type(error).__name__})"
            except httpx.TransportError as error:
                problem = f"connection failed ({type(error).__name__}: {error})"
            else:
                if response.status_code not in RETRY_STATUSES:
                    return response
                problem = f"HTTP {response.status_code}"
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                response.close()
            if attempt == self.policy.max_retries:
                raise self.error(
                    f"{method} {target} failed after {attempt + 1} attempt(s): {problem}"
                )
            wait = self.policy.delay(attempt, retry_after)
            self.stats.add(retries=1)
            self.log.warning(
                "%s",
                scrub(
                    f"{self.label}: {method} {target}: {problem}; retry {attempt + 1}/"
                    f"{self.policy.max_retries} in {wait:.2f}s",
                    self._secrets(),
                ),
            )
            self._sleep(wait)
        raise AssertionError("unreachable")  # the loop returns or raises

    def json(self, response: httpx.Response) -> Any:
        """The response body as JSON, or an ApiError saying the body is not JSON."""
        try:
            return response.json()
        except ValueError:
            raise self.error(
                f"{response.request.method} {url_path(response.request.url)} returned malformed "
                f"JSON (HTTP {response.status_code}, {len(response.content)} bytes)"
            ) from None

    def unexpected(self, response: httpx.Response, hint: str = "") -> ApiError:
        """An ApiError for a response the caller cannot use, with a short excerpt of the body."""
        excerpt = " ".join(response.text[:200].split())
        return self.error(
            f"{response.request.method} {url_path(response.request.url)} returned HTTP "
            f"{response.status_code}" + (f": {excerpt}" if excerpt else "") + (hint and f"; {hint}")
        )
