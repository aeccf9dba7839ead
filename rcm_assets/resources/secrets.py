"""Secrets from the environment, optionally stored in Azure Key Vault.

A value written `kv:<secret-name>` (in any credential environment variable, or a database URI
variable) is read from the vault at AZURE_KEY_VAULT_URL with DefaultAzureCredential when it is
first used, and kept in memory only. Plain values are returned as they are.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cache
from typing import Any

from rcm_assets.errors import RcmError

KEY_VAULT_PREFIX = "kv:"
KEY_VAULT_URL_ENV = "AZURE_KEY_VAULT_URL"


class SecretError(RcmError):
    """A Key Vault reference that cannot be resolved (the message never holds a secret)."""


def _default_client(vault_url: str) -> Any:
    from azure.identity import DefaultAzureCredential
    from azure.keyvault.secrets import SecretClient

    return SecretClient(vault_url=vault_url, credential=DefaultAzureCredential())


# Tests replace this with a fake; production uses the Azure SDK.
secret_client_factory: Callable[[str], Any] = _default_client


def resolve_secret(value: str) -> str:
    """The secret a value stands for: itself, or the Key Vault secret it references."""
    if not value.startswith(KEY_VAULT_PREFIX):
        return value
    name = value.removeprefix(KEY_VAULT_PREFIX).strip()
    vault_url = os.environ.get(KEY_VAULT_URL_ENV, "")
    if not name:
        raise SecretError(f"Key Vault reference {value!r} names no secret (write kv:<name>)")
    if not vault_url:
        raise SecretError(
            f"Key Vault secret {name!r} is referenced, but {KEY_VAULT_URL_ENV} is not set"
        )
    return _read_secret(vault_url, name)


@cache
def _read_secret(vault_url: str, name: str) -> str:
    try:
        secret = secret_client_factory(vault_url).get_secret(name)
    except Exception as error:  # the SDK raises many kinds; none carry the secret's value
        raise SecretError(
            f"cannot read secret {name!r} from Key Vault {vault_url}: {type(error).__name__}: "
            f"{error}"
        ) from error
    if not secret.value:
        raise SecretError(f"Key Vault secret {name!r} in {vault_url} is empty")
    return secret.value


def clear_cache() -> None:
    _read_secret.cache_clear()
