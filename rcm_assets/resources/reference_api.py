"""What the NPPES and WHO ICD resources share: settings from metadata, overrides, the transport.

A reference API's settings come from its row in metadata/api_sources.csv; a resource field that
is set wins (tests point `base_url` at a local server and shorten the backoff). The mode picks
the httpx transport and nothing else: `live` sends requests to the network, `replay` answers
them in process from the fixtures in `replay_dir` (see resources/api_replay.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from dagster import ConfigurableResource
from pydantic import Field

from rcm_assets.metadata import ApiMode, ApiSource, ApiSourceName
from rcm_assets.resources.api_replay import ReplayApi
from rcm_assets.resources.http_retry import ApiError, ApiHttp, RateLimiter, RetryPolicy
from rcm_assets.settings import rcm_home

USER_AGENT = "rcm-lakehouse/0.1 (reference data extract)"


@dataclass(frozen=True)
class ApiSettings:
    """One API source's effective settings (metadata row + resource overrides)."""

    source: ApiSourceName
    mode: ApiMode
    base_url: str
    token_url: str | None
    rate_limit_per_second: float | None  # None: unlimited
    max_concurrency: int
    page_size: int | None
    timeout_seconds: float
    policy: RetryPolicy
    release: str | None
    root_codes: tuple[str, ...]

    def describe(self) -> dict[str, object]:
        """For asset metadata: how the extract reached the API (no credentials here)."""
        return {
            "api_mode": self.mode.value,
            "api_base_url": self.base_url,
            "rate_limit_per_second": self.rate_limit_per_second or 0.0,
            "max_retries": self.policy.max_retries,
        }


class ReferenceApiResource(ConfigurableResource):
    """Overrides of a reference API's metadata settings; empty fields keep the metadata value."""

    mode: ApiMode | None = Field(
        default=None,
        description="`replay` (fixtures in replay_dir, offline) or `live` (the real URLs); "
        "empty: the mode in metadata/api_sources.csv.",
    )
    base_url: str | None = Field(default=None, description="Replaces the metadata base URL.")
    replay_dir: str = Field(
        default_factory=lambda: str(rcm_home() / "replay"),
        description="Folder of the replay fixtures written by `rcm generate`.",
    )
    rate_limit_per_second: float | None = Field(
        default=None,
        description="Requests per second; empty: the metadata value in live mode, unlimited in "
        "replay mode (local fixtures need no politeness).",
    )
    max_concurrency: int | None = Field(default=None, description="Parallel requests.")
    timeout_seconds: float | None = Field(default=None, description="Per-request timeout.")
    max_retries: int | None = Field(default=None, description="Retries of a transient failure.")
    backoff_seconds: float | None = Field(default=None, description="First retry's base wait.")
    max_backoff_seconds: float = Field(default=60.0, description="Longest wait between retries.")

    def settings(self, source: ApiSource) -> ApiSettings:
        mode = self.mode or source.mode
        rate = self.rate_limit_per_second
        if rate is None and mode is ApiMode.LIVE:
            rate = source.rate_limit_per_second
        return ApiSettings(
            source=source.source,
            mode=mode,
            base_url=(self.base_url or source.base_url).rstrip("/"),
            token_url=source.token_url,
            rate_limit_per_second=rate or None,
            max_concurrency=self.max_concurrency or source.max_concurrency,
            page_size=source.page_size,
            timeout_seconds=self.timeout_seconds or source.timeout_seconds,
            policy=RetryPolicy(
                max_retries=source.max_retries if self.max_retries is None else self.max_retries,
                backoff_seconds=(
                    source.backoff_seconds if self.backoff_seconds is None else self.backoff_seconds
                ),
                max_backoff_seconds=self.max_backoff_seconds,
            ),
            release=source.release,
            root_codes=source.root_codes,
        )

    def _transport(self, settings: ApiSettings, label: str, fixture: str) -> httpx.BaseTransport:
        if settings.mode is ApiMode.LIVE:
            return httpx.HTTPTransport()
        if not (Path(self.replay_dir) / fixture).is_file():
            raise ApiError(
                f"{label}: replay fixtures not found ({Path(self.replay_dir) / fixture}); run "
                "`rcm generate` or `python -m rcm_assets.sample_data.api_replay`, or use mode "
                "live"
            )
        return ReplayApi.load(Path(self.replay_dir)).transport()

    @contextmanager
    def _open_http(
        self,
        settings: ApiSettings,
        label: str,
        fixture: str,
        log: logging.Logger | None,
        secrets: Callable[[], Iterable[str | None]] = tuple,
    ) -> Iterator[ApiHttp]:
        client = httpx.Client(
            transport=self._transport(settings, label, fixture),
            timeout=httpx.Timeout(settings.timeout_seconds),
            headers={"User-Agent": USER_AGENT},
        )
        with client:
            yield ApiHttp(
                label,
                client,
                settings.policy,
                RateLimiter(settings.rate_limit_per_second),
                log,
                secrets,
            )
