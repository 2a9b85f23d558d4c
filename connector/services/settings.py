"""The effective configuration, as `renewals config show` prints it and the console's Settings
page shows it: every section of app.yaml with its defaults filled in, the files it points at,
and the secrets (environment variables only) as set or unset, never their values. A database
password written into state.url is masked (connector.services.versions.mask_passwords)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from crm_renewals.connector.config import SECRET_ENV_VARS, AppConfig
from crm_renewals.connector.connections import DEFAULT, overrides_path
from crm_renewals.connector.services.versions import mask_passwords


def effective_config(config: AppConfig) -> dict[str, Any]:
    """app.yaml as the connector reads it: every key, defaults included, the scheduled jobs
    with their default schedules."""
    data = config.model_dump(mode="json")
    if data["state"]["url"]:
        data["state"]["url"] = mask_passwords(data["state"]["url"])
    data["schedule"]["jobs"] = {
        name: job.model_dump(mode="json", exclude_none=True)
        for name, job in config.schedule.effective_jobs().items()
    }
    return data


def effective_yaml(config: AppConfig) -> str:
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml's: ten times faster
    return yaml.dump(effective_config(config), Dumper=dumper, sort_keys=False, allow_unicode=True)


def config_files(config: AppConfig) -> dict[str, str]:
    """Where the configuration and the data live (the state database's password masked)."""
    files = {
        "connection": config.connection,
        "app.yaml": str(config.source) if config.source else "(built in code)",
        "mapping": str(config.mapping_path),
        "data folder": str(config.data_path),
        "state database": mask_passwords(config.state_url)
        + (" (from RENEWALS_STATE_URL)" if config.state_url_from_env else ""),
    }
    if config.connection != DEFAULT:
        own = overrides_path(config, config.connection)
        files["connection settings"] = str(own) if own.exists() else "(none: app.yaml's)"
    return files


def secrets_set(config: AppConfig, env: Mapping[str, str]) -> dict[str, bool]:
    """Each secret environment variable, the alert targets `notify` names among them: set (to
    something other than blanks) or not."""
    names = (*SECRET_ENV_VARS, *config.notify.targets)
    return {name: bool((env.get(name) or "").strip()) for name in names}
