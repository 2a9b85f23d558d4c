"""The access token of an OAuth connection, for its CRM adapter: read from the registry
(sealed), refreshed shortly before it expires, and renewed when the CRM refuses it.

A refresh runs inside the connection row's lock (ConnectionRepository.locked): of processes
that find the token due at once, the first refreshes and the others, once they get the lock,
read what it stored and refresh nothing. A refresh token the CRM refuses (revoked, expired)
marks the connection needs_reconnect, alerts, and raises ReconnectNeeded: the run ends
failed with that message and resumes, from where it was, once the connection is connected
again."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from crm_renewals.connector.config import AppConfig
from crm_renewals.connector.errors import FatalCrmError
from crm_renewals.connector.oauth.grants import Grant, GrantRefused, Provider, ReconnectNeeded
from crm_renewals.connector.secretbox import SecretBox
from crm_renewals.connector.services import alerts
from crm_renewals.connector.state import StateStore
from crm_renewals.connector.state.connections import (
    CONNECTED,
    DISCONNECTED,
    NEEDS_RECONNECT,
    PENDING,
    REMOVED,
    ConnectionRow,
)

log = logging.getLogger(__name__)
#: refusals that mean the grant itself is gone (RFC 6749 5.2; HubSpot's legacy
#: BAD_REFRESH_TOKEN is read as invalid_grant by its client): only an admin can fix them
DEAD_GRANT = ("invalid_grant",)


def utcnow() -> datetime:
    return datetime.now(UTC)


def reconnect_message(name: str) -> str:
    return f"connection {name} needs reconnecting: Connections > Reconnect in the console"


#: why a connection of each status other than connected cannot run, and what to do
NOT_RUNNABLE = {
    PENDING: "connection {} is not connected yet: Connections > Connect in the console",
    NEEDS_RECONNECT: "connection {} needs reconnecting: Connections > Reconnect in the console",
    DISCONNECTED: "connection {} is disconnected: Connections > Reconnect in the console",
    REMOVED: "connection {} is removed (renewals connections add, then connect it)",
}


def not_runnable(name: str, row: ConnectionRow | None) -> str | None:
    """Why connection `name` (its registry row) cannot run now; None if it can."""
    if row is None:
        if name == "default":
            return None
        return f"connection {name} is not in the registry (renewals connections list)"
    if row.status == CONNECTED:
        if row.auth == "oauth" and not row.tokens:
            return NOT_RUNNABLE[NEEDS_RECONNECT].format(name)
        return None
    found = NOT_RUNNABLE.get(row.status, "connection {} cannot run (status " + row.status + ")")
    return found.format(name) + (f" ({row.status_reason})" if row.status_reason else "")


class TokenSource:
    """The current access token of connection `config.connection` (thread-safe)."""

    def __init__(
        self,
        config: AppConfig,
        registry_url: str,
        provider: Provider,
        box: SecretBox,
        clock: Callable[[], datetime] = utcnow,
    ):
        self.config = config
        self.name = config.connection
        self.registry_url = registry_url
        self.provider = provider
        self.box = box
        self.clock = clock
        self.ahead = timedelta(seconds=config.oauth.refresh_before_seconds)
        self._grant: Grant | None = None
        self._lock = threading.Lock()
        #: refreshes this source made (not those another process made for it)
        self.refreshes = 0

    def __repr__(self) -> str:
        return f"TokenSource({self.name!r})"

    @contextmanager
    def _registry(self) -> Iterator[StateStore]:
        """The registry, opened for one read or refresh: a token source lives as long as its
        adapter, and holds no database connection in between."""
        store = StateStore(self.registry_url)
        try:
            yield store
        finally:
            store.close()

    def grant(self) -> Grant:
        """The stored grant (read once, then as refreshed)."""
        with self._lock:
            if self._grant is None:
                with self._registry() as registry:
                    row = registry.connections.get(self.name)
                self._grant = self._open(self._row(row))
            return self._grant

    def access_token(self) -> str:
        """The access token, refreshed first when it expires within
        oauth.refresh_before_seconds."""
        grant = self.grant()
        if self._due(grant):
            grant = self._refresh(self._due)
        return grant.access_token

    __call__ = access_token  # what HubSpotTransport asks before each request

    def renew(self, stale: str) -> str:
        """The CRM refused `stale`: a fresh token (refreshed here unless another process
        already replaced it)."""
        return self._refresh(lambda g: g.access_token == stale).access_token

    def close(self) -> None:
        """Nothing held open (the registry is opened per use); the cached grant forgotten."""
        with self._lock:
            self._grant = None

    # ------------------------------------------------------------------ refreshing

    def _due(self, grant: Grant) -> bool:
        return grant.expires_at is not None and grant.expires_at - self.ahead <= self.clock()

    def _refresh(self, needed: Callable[[Grant], bool]) -> Grant:
        with self._lock, self._registry() as registry:
            with registry.connections.locked(self.name) as (row, conn):
                grant = self._open(self._row(row))
                refused = None
                if needed(grant):
                    grant, refused = self._refreshed(registry, row, conn, grant)
            if refused is not None:  # committed: now told, then the run stops
                self._grant = None
                log.info("connection %s: refresh token refused (%s)", self.name, refused.error)
                alerts.needs_reconnect(self.config, registry, self.name, str(refused.error))
                raise ReconnectNeeded(reconnect_message(self.name), system=self.config.crm)
            self._grant = grant
            return grant

    def _refreshed(
        self, registry: StateStore, row: ConnectionRow, conn, grant: Grant
    ) -> tuple[Grant, GrantRefused | None]:
        """Within the row's lock: the new grant stored, or the connection marked
        needs_reconnect (and the refusal returned)."""
        try:
            fresh = self.provider.refresh(grant)
        except GrantRefused as exc:
            if exc.error not in DEAD_GRANT:
                raise self._app_refused(exc) from None
            stamp = self.clock().strftime("%Y-%m-%d %H:%M UTC")
            reason = f"{self.config.crm} refused its refresh token ({exc.error}), {stamp}"
            changed = row.replace(status=NEEDS_RECONNECT, status_reason=reason)
            registry.connections.store_locked(conn, changed)
            return grant, exc
        self.refreshes += 1
        registry.connections.store_locked(
            conn,
            row.replace(
                tokens=self.box.seal(fresh.to_json()),
                token_expires_at=fresh.expires_at,
                instance_url=fresh.instance_url or row.instance_url,
            ),
        )
        log.info("connection %s: access token refreshed", self.name)
        return fresh, None

    def _row(self, row: ConnectionRow | None) -> ConnectionRow:
        if row is None or row.status != CONNECTED or not row.tokens:
            raise ReconnectNeeded(reconnect_message(self.name), system=self.config.crm)
        return row

    def _open(self, row: ConnectionRow) -> Grant:
        return Grant.from_json(self.box.open(row.tokens))

    def _app_refused(self, exc: GrantRefused) -> FatalCrmError:
        """A refusal of the app, not of the grant (invalid_client: its credentials)."""
        return FatalCrmError(
            f"{self.config.crm} refused the app's token request ({exc.error}): check the app "
            "credentials in the environment (README: Connections)",
            system=self.config.crm,
            code=exc.error,
        )
