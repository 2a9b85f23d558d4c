"""What `renewals doctor` and the console check: the CRM connection's own checks (credentials,
API version, limits, the mapping against the CRM's schema), then the alert targets."""

from __future__ import annotations

from collections.abc import Mapping

from crm_renewals.connector.config import AppConfig
from crm_renewals.connector.ports import Check, Diagnosable
from crm_renewals.connector.services.notify import checks as alert_checks


def doctor(
    crm: Diagnosable, config: AppConfig, env: Mapping[str, str] | None = None
) -> list[Check]:
    return [*crm.doctor(), *alert_checks(config.notify, env)]
