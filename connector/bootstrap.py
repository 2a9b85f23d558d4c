"""The composition root: the one place that builds adapters, the state store and the Context
from configuration. The CLI, the webhook app (`renewals serve`), the inbox worker and the
scheduler all get what they need from here; tests inject fakes through the same functions."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from crm_renewals.connector.adapters.sandbox import SandboxCrm
from crm_renewals.connector.config import AppConfig, find_config, load_config
from crm_renewals.connector.errors import (
    ConfigError,
    ConnectorError,
    Problem,
    UnusableDatabaseError,
)
from crm_renewals.connector.mapping_file import load_mapping
from crm_renewals.connector.ports import CrmClient
from crm_renewals.connector.services.context import Context
from crm_renewals.connector.services.versions import read_used_files
from crm_renewals.connector.state import StateStore, create_schema, sqlite_path

if TYPE_CHECKING:  # the CRM libraries load only for the CRM in use
    from crm_renewals.connector.adapters.salesforce import SalesforceCrm
    from crm_renewals.connector.adapters.shared_limits import SharedLimits
    from crm_renewals.connector.oauth.tokens import TokenSource


def load(config_path: str | None, connection: str | None = None) -> AppConfig:
    """The configuration of a connection (connector/connections.py: `connection`, else
    $RENEWALS_CONNECTION, else the only one or `default`) in the app.yaml at `config_path`
    (else $RENEWALS_CONFIG, else ./app.yaml)."""
    base = load_base(config_path)
    return connection_config(base, connection)


def connection_config(base: AppConfig, name: str | None) -> AppConfig:
    """The configuration of connection `name` of the deployment `base` is app.yaml of."""
    from crm_renewals.connector import connections
    from crm_renewals.connector.connections import DEFAULT

    path = sqlite_path(base.state_url)
    if path is not None and not path.exists():  # a new install: app.yaml is all there is
        return connections.configuration(base, connections.choose(base, None, name))
    try:
        registry = open_store(base)
    except UnusableDatabaseError:
        if (name or os.environ.get(connections.CONNECTION_ENV) or DEFAULT) != DEFAULT:
            raise
        # app.yaml's own connection needs no registry to be known: a command that opens the
        # state database says what is wrong with it; one that does not (config show) works
        return connections.configuration(base, connections.default_connection(base))
    try:
        chosen = connections.choose(base, registry, name)
    finally:
        registry.close()
    return connections.configuration(base, chosen)


def load_base(config_path: str | None) -> AppConfig:
    """app.yaml itself: the deployment's settings, and the default connection's."""
    path = find_config(config_path)
    if not path.exists():
        raise ConfigError(
            [
                Problem(
                    "", "configuration file not found (use --config or RENEWALS_CONFIG)", str(path)
                )
            ]
        )
    return load_config(path)


def open_store(config: AppConfig) -> StateStore:
    """The state store of this configuration (the only place a StateStore is built)."""
    if config.state_schema:
        create_schema(config.state_url, config.state_schema)
    return StateStore(config.state_url)


def open_registry(config: AppConfig) -> StateStore:
    """The state store holding the deployment's connections (the default connection's)."""
    return StateStore(config.connections_url)


def build(config: AppConfig, crm: CrmClient | None = None) -> Context:
    """A use case's Context: mapping, CRM adapter and state store (close it when done). A
    `crm` given is used as it is (a benchmark's adapter with its own timing). A connection
    that cannot run now (not yet connected, needing reconnecting...) is refused in one line."""
    if crm is None:
        check_runnable(config)
    mapping = load_mapping(config.mapping_path, expect_crm=config.crm)
    files = read_used_files(config)  # right after loading them: the versions this Context uses
    return Context(config, mapping, crm or build_crm(config, mapping), open_store(config), files)


def check_runnable(config: AppConfig) -> None:
    """A ConnectorError unless connection `config.connection` may run (connected)."""
    if config.connection == "default" and config.connection_auth == "env":
        return  # app.yaml alone: credentials from the environment, nothing stored to check
    from crm_renewals.connector.oauth.tokens import not_runnable

    registry = open_registry(config)
    try:
        row = registry.connections.get(config.connection)
    finally:
        registry.close()
    why = not_runnable(config.connection, row)
    if why:
        raise ConnectorError(why)


def token_source(config: AppConfig) -> TokenSource:
    """The access token of an OAuth connection (sealed under RENEWALS_ENCRYPTION_KEY)."""
    from crm_renewals.connector.oauth.providers import provider
    from crm_renewals.connector.oauth.tokens import TokenSource
    from crm_renewals.connector.secretbox import SecretBox

    box = SecretBox(os.environ)  # unset or unusable: the ConfigError it raises says so
    client = provider(config, config.crm, os.environ)
    return TokenSource(config, config.connections_url, client, box)


def build_crm(config: AppConfig, mapping) -> CrmClient:
    """The adapter of the configured CRM."""
    if config.crm == "salesforce":
        return build_salesforce(config, mapping)
    if config.crm == "hubspot":
        return build_hubspot(config, mapping)
    if config.crm == "sandbox":
        return build_sandbox(config, mapping)
    raise ConfigError(
        [Problem("crm", f"the {config.crm} adapter is not available in this version", "app.yaml")]
    )


def shared_limits(config: AppConfig) -> SharedLimits | None:
    """The Redis rate limits are shared through (workers.redis_url; RENEWALS_REDIS_URL wins),
    keys under the deployment's queue; None: each process counts alone."""
    if not config.workers.redis_url:
        return None
    from crm_renewals.connector.adapters.shared_limits import SharedLimits

    return SharedLimits.for_workers(config.workers.redis_url, config.workers.queue)


def context_factory(config: AppConfig) -> Callable[[], Context]:
    """A fresh Context per call: what the inbox worker and the scheduler's jobs run with."""
    return partial(build, config)


def build_salesforce(config: AppConfig, mapping) -> SalesforceCrm:
    from crm_renewals.connector.adapters.salesforce import SalesforceCrm, connect

    settings = config.salesforce
    contract = mapping.models["contract"].fields
    missing = [f for f in ("renewal_forecast", "cpq_renewal_id") if f not in contract]
    if config.renewals.renewal_mode == "cpq" and missing:
        raise ConfigError(
            [
                Problem(
                    "models.contract.fields",
                    f"renewal_mode: cpq needs {' and '.join(missing)} mapped (the CPQ block in "
                    "mappings/salesforce.yaml: SBQQ__RenewalForecast__c, "
                    "SBQQ__RenewalOpportunity__c)",
                    str(config.mapping_path),
                )
            ]
        )
    if config.connection_auth == "oauth":
        from crm_renewals.connector.adapters.salesforce import connect_oauth

        tokens = token_source(config)
        grant = tokens.grant()
        session = connect_oauth(settings, grant.instance_url or "", tokens(), tokens.renew)
        org = grant.external_id
    else:
        session, org = connect(settings), None
    return SalesforceCrm(
        session,
        mapping,
        settings,
        page_size=config.sync.page_size,
        policy=config.renewals,
        retry_attempts=config.sync.retry_attempts,
        retry_max_wait=config.sync.retry_max_wait_seconds,
        shared=shared_limits(config),
        org=org,
    )


def build_sandbox(config: AppConfig, mapping=None) -> SandboxCrm:
    mapping = mapping or load_mapping(config.mapping_path, expect_crm="sandbox")
    return SandboxCrm(
        Path(config.sandbox_path),
        mapping,
        batch_size=config.sandbox.batch_size,
        page_size=config.sync.page_size,
        retry_attempts=config.sync.retry_attempts,
        retry_max_wait=config.sync.retry_max_wait_seconds,
        policy=config.renewals,
    )


def build_hubspot(config: AppConfig, mapping=None):
    """The HubSpot adapter; the access token comes from HUBSPOT_ACCESS_TOKEN, or, for an OAuth
    connection, from its stored tokens (refreshed before they expire)."""
    from crm_renewals.connector.adapters.hubspot import TOKEN_ENV, HubSpotCrm

    mapping = mapping or load_mapping(config.mapping_path, expect_crm="hubspot")
    if config.connection_auth == "oauth":
        tokens = token_source(config)
        return HubSpotCrm(
            mapping,
            config.hubspot,
            tokens,
            retry_attempts=config.sync.retry_attempts,
            retry_max_wait=config.sync.retry_max_wait_seconds,
            policy=config.renewals,
            portal=tokens.grant().external_id,
            shared=shared_limits(config),
        )
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise ConfigError(
            [
                Problem(
                    TOKEN_ENV,
                    "not set: create a HubSpot private app (see README, Connect HubSpot) and "
                    "export its access token as HUBSPOT_ACCESS_TOKEN",
                    "environment",
                )
            ]
        )
    return HubSpotCrm(
        mapping,
        config.hubspot,
        token,
        retry_attempts=config.sync.retry_attempts,
        retry_max_wait=config.sync.retry_max_wait_seconds,
        policy=config.renewals,
        shared=shared_limits(config),
    )
