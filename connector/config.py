"""Typed app.yaml: frozen pydantic models, unknown keys forbidden, every problem reported at once.

Secrets never live in app.yaml; they are read from environment variables (see SECRET_ENV_VARS).
"""

from __future__ import annotations

import os
import string
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import Field

from crm_renewals.connector.config_sections import (
    DEFAULT_JOBS,
    NOTIFY_PREFIX,
    ConsoleSettings,
    HubspotSettings,
    Job,
    NotifySettings,
    OAuthSettings,
    SalesforceSettings,
    SandboxSettings,
    Schedule,
    Section,
    StateSettings,
    SyncSettings,
    WebhookSettings,
    WorkerSettings,
)
from crm_renewals.connector.domain.policy import (
    Journey,
    Playbook,
    RenewalPolicy,
    Scorecard,
    Segments,
    Upsell,
)
from crm_renewals.connector.errors import ConfigError, Problem
from crm_renewals.connector.yamlsource import YamlSource, load_yaml, validate_all

CONFIG_ENV = "RENEWALS_CONFIG"
#: The state database's URL, instead of app.yaml's state.url: its password stays out of files.
STATE_URL_ENV = "RENEWALS_STATE_URL"
#: workers.broker_url and workers.redis_url from the environment (they may carry a password)
BROKER_URL_ENV = "RENEWALS_BROKER_URL"
REDIS_URL_ENV = "RENEWALS_REDIS_URL"
#: Environment variables that hold secrets; their values are redacted from every log line.
SECRET_ENV_VARS = (
    STATE_URL_ENV,
    BROKER_URL_ENV,
    REDIS_URL_ENV,
    "SALESFORCE_PASSWORD",
    "SALESFORCE_SECURITY_TOKEN",
    "SALESFORCE_SESSION_ID",
    "SALESFORCE_CONSUMER_KEY",
    "HUBSPOT_ACCESS_TOKEN",
    "HUBSPOT_CLIENT_SECRET",
    "SIGNALS_WEBHOOK_SECRET",
    "RENEWALS_SECRET_KEY",
    "RENEWALS_ENCRYPTION_KEY",
    "HUBSPOT_APP_CLIENT_SECRET",
    "SALESFORCE_APP_CONSUMER_SECRET",
)
#: Environment variables named so hold secrets too (alert targets with their tokens).
SECRET_ENV_PREFIXES = (NOTIFY_PREFIX,)


class AppConfig(Section):
    crm: Literal["sandbox", "salesforce", "hubspot"] = "sandbox"
    data_dir: Path = Path("data")
    mapping: Path | None = None
    state: StateSettings = StateSettings()
    sync: SyncSettings = SyncSettings()
    sandbox: SandboxSettings = SandboxSettings()
    salesforce: SalesforceSettings = SalesforceSettings()
    hubspot: HubspotSettings = HubspotSettings()
    renewals: RenewalPolicy = RenewalPolicy()
    scorecard: Scorecard = Scorecard()
    upsell: Upsell = Upsell()
    playbook: Playbook = Playbook()
    schedule: Schedule = Schedule()
    webhooks: WebhookSettings = WebhookSettings()
    console: ConsoleSettings = ConsoleSettings()
    notify: NotifySettings = NotifySettings()
    oauth: OAuthSettings = OAuthSettings()
    segments: Segments = Segments()
    workers: WorkerSettings = WorkerSettings()
    base_dir: Path = Field(Path("."), exclude=True)
    #: the file it was read from (None: built in code); runs record its versions
    source: Path | None = Field(None, exclude=True)
    #: state.url came from RENEWALS_STATE_URL, not from the file
    state_url_from_env: bool = Field(False, exclude=True)
    #: the CRM connection this configuration is of (connector/connections.py): `default` is
    #: app.yaml's own; another's state lives in a database (or schema) of its own
    connection: str = Field("default", exclude=True)
    #: env: its credentials come from the environment; oauth: from its stored tokens
    connection_auth: Literal["env", "oauth"] = Field("env", exclude=True)
    #: the state database holding the deployment's connections (the default connection's)
    registry_url: str | None = Field(None, exclude=True)
    #: PostgreSQL: the schema of this connection's state (created when first opened)
    state_schema: str | None = Field(None, exclude=True)

    def path(self, p: Path) -> Path:
        """A path from the config, relative to the config file's folder."""
        return p if p.is_absolute() else self.base_dir / p

    @property
    def data_path(self) -> Path:
        return self.path(self.data_dir)

    @property
    def mapping_path(self) -> Path:
        return self.path(self.mapping or Path("mappings") / f"{self.crm}.yaml")

    @property
    def state_url(self) -> str:
        return self.state.url or f"sqlite:///{self.data_path / 'state.db'}"

    @property
    def connections_url(self) -> str:
        """The state database holding the connections (the default connection's)."""
        return self.registry_url or self.state_url

    @property
    def sandbox_path(self) -> Path:
        return self.path(self.sandbox.database or self.data_dir / "sandbox.db")


def find_config(explicit: str | None) -> Path:
    """--config, then $RENEWALS_CONFIG, then ./app.yaml."""
    chosen = explicit or os.environ.get(CONFIG_ENV) or "app.yaml"
    return Path(chosen)


def load_config(path: str | Path) -> AppConfig:
    src = load_yaml(path)
    if not isinstance(src.data, dict):
        raise ConfigError([src.problem((), "the top level must be a mapping of sections")])
    where = Path(path).resolve()
    return validated(src.data, src, {"base_dir": where.parent, "source": where})


def validated(data: dict, src: YamlSource, extra: dict) -> AppConfig:
    """AppConfig of `data` (problems located in `src`), RENEWALS_STATE_URL applied; every
    problem raised at once as a ConfigError."""
    cfg, problems = validate_all(AppConfig, data, src, extra)
    if cfg is not None:
        cfg = _state_url_override(cfg)
        cfg, env_problems = _worker_urls_override(cfg)
        problems += env_problems + semantic_problems(cfg, src)
    if problems:
        raise ConfigError(problems)
    return cfg


def _state_url_override(cfg: AppConfig) -> AppConfig:
    """RENEWALS_STATE_URL, when set, in place of state.url."""
    url = os.environ.get(STATE_URL_ENV, "").strip()
    if not url:
        return cfg
    state = cfg.state.model_copy(update={"url": url})
    return cfg.model_copy(update={"state": state, "state_url_from_env": True})


def _worker_urls_override(cfg: AppConfig) -> tuple[AppConfig, list[Problem]]:
    """RENEWALS_BROKER_URL and RENEWALS_REDIS_URL, when set, in place of workers.broker_url and
    workers.redis_url (checked like them; a wrong one is named, its value never shown)."""
    update = {
        key: os.environ[env].strip()
        for key, env in (("broker_url", BROKER_URL_ENV), ("redis_url", REDIS_URL_ENV))
        if os.environ.get(env, "").strip()
    }
    if not update:
        return cfg, []
    try:
        workers = WorkerSettings.model_validate({**cfg.workers.model_dump(), **update})
    except ValueError:
        wrong = [
            env
            for key, env in (("broker_url", BROKER_URL_ENV), ("redis_url", REDIS_URL_ENV))
            if key in update
        ]
        return cfg, [
            Problem(
                env,
                "must be a redis://, rediss:// or amqp:// URL (redis:// for RENEWALS_REDIS_URL)",
                "environment",
            )
            for env in wrong
        ]
    return cfg.model_copy(update={"workers": workers}), []


def semantic_problems(cfg: AppConfig, src: YamlSource) -> list[Problem]:
    """Cross-field rules that a single field's type cannot say."""
    out: list[Problem] = []
    r = cfg.renewals
    if r.latest_creation_days > r.lead_time_days:
        out.append(
            src.problem(
                ("renewals", "latest_creation_days"),
                f"must not exceed lead_time_days ({r.lead_time_days})",
            )
        )
    if r.notice_days >= r.latest_creation_days:
        out.append(
            src.problem(
                ("renewals", "notice_days"),
                "the customer notice must come after the renewal is created: "
                f"keep it below latest_creation_days ({r.latest_creation_days})",
            )
        )
    if r.renewal_mode == "cpq" and cfg.crm != "salesforce":
        out.append(
            src.problem(
                ("renewals", "renewal_mode"), "cpq is a Salesforce CPQ mode: needs crm: salesforce"
            )
        )
    if r.initial_stage in r.closed_won_stages + r.closed_lost_stages:
        out.append(src.problem(("renewals", "initial_stage"), "must be an open stage"))
    out += _template_problems(src, ("renewals", "name_template"), r.name_template, NAME_FIELDS)
    for i, step in enumerate(cfg.playbook.steps):
        for attr in ("subject", "description"):
            out += _template_problems(
                src, ("playbook", "steps", i, attr), getattr(step, attr), TASK_FIELDS
            )
    ids = [s.id for s in cfg.playbook.steps]
    for i, step_id in enumerate(ids):
        if ids.index(step_id) != i:
            out.append(src.problem(("playbook", "steps", i, "id"), f"duplicate step {step_id!r}"))
    for event in ("at_risk", "name_contact"):
        for attr in ("subject", "description"):
            out += _template_problems(
                src,
                ("playbook", event, attr),
                getattr(getattr(cfg.playbook, event), attr),
                TASK_FIELDS,
            )
    out += _journey_problems(src, cfg.playbook.journey)
    out += _hubspot_problems(cfg, src)
    out += _storage_problems(cfg, src)
    if cfg.scorecard.yellow >= cfg.scorecard.green:
        out.append(src.problem(("scorecard", "yellow"), "must be below the green threshold"))
    for name, job in cfg.schedule.jobs.items():
        out += _job_problems(src, ("schedule", "jobs", name), job)
    out += _schedule_problems(src, cfg.schedule)
    return out


def _storage_problems(cfg: AppConfig, src: YamlSource) -> list[Problem]:
    """Folders that are files, a state URL the store cannot use: said before anything opens."""
    from crm_renewals.connector.state import url_problem  # the state store loads only when asked

    out = []
    blocked = _not_a_folder(cfg.data_path)
    if blocked is not None:
        out.append(
            src.problem(
                ("data_dir",),
                f"{blocked} is a file, not a folder: point data_dir at a folder (it is created "
                "if missing)",
            )
        )
    problem = cfg.state.url and url_problem(cfg.state.url)
    if problem and cfg.state_url_from_env:
        out.append(Problem(STATE_URL_ENV, problem, "environment"))
    elif problem:
        out.append(src.problem(("state", "url"), problem))
    return out


def _not_a_folder(path: Path) -> Path | None:
    """`path` or the first of its parents that exists as something other than a folder."""
    for p in (path, *path.parents):
        if p.exists():
            return None if p.is_dir() else p
    return None


def _hubspot_problems(cfg: AppConfig, src: YamlSource) -> list[Problem]:
    h = cfg.hubspot
    out = []
    if h.contract_source == "deals" and h.contract_object != "deals":
        out.append(
            src.problem(
                ("hubspot", "contract_object"),
                "contract_source deals reads the deals object: set contract_object: deals",
            )
        )
    if h.contract_source == "deals" and not h.contract_stages:
        out.append(src.problem(("hubspot", "contract_stages"), "name the closed-won stage ids"))
    if h.contract_source == "custom_object" and h.contract_object in ("deals", "contracts"):
        out.append(
            src.problem(
                ("hubspot", "contract_object"),
                "give the custom object's type id (e.g. 2-1234567) or fully qualified name",
            )
        )
    return out


NAME_FIELDS = {"account_name": "Acme", "contract_number": "00000100", "end_date": date(2027, 3, 31)}
TASK_FIELDS = {
    **NAME_FIELDS,
    "amount": "1,000.00",
    "currency": "USD",
    "uplift_percent": "3",
    "contacts": "Ann (ann@example.com)",
    "owner_name": "Sam",
    "due_date": date(2027, 1, 1),
    # health-aware steps (QBR brief, at-risk follow-up)
    "health_score": "64",
    "grade": "yellow",
    "trend": "down 12",
    "drivers": "seat utilisation 34%, down from 61%",
    "usage_trend": "seat utilisation 34% (was 61%)",
    "upsell": "10 more seats",
    "period": "2027-Q1",
}


def _journey_problems(src: YamlSource, journey: Journey) -> list[Problem]:
    """The journey's templates: a step's placeholders, plus {segment} and {segments}."""
    fields = {**TASK_FIELDS, "segment": 4, "segments": 18}
    where = [(("touchpoints", k), tp) for k, tp in journey.touchpoints.items()]
    out = []
    for path, tp in [*where, (("default",), journey.default)]:
        for attr in ("subject", "description"):
            out += _template_problems(
                src, ("playbook", "journey", *path, attr), getattr(tp, attr), fields
            )
    return out


def _template_problems(src: YamlSource, path: tuple, template: str, fields: dict) -> list[Problem]:
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(template) if f}
        unknown = sorted(names - fields.keys())
        if unknown:
            return [
                src.problem(
                    path,
                    f"unknown placeholder {{{unknown[0]}}}; available: {', '.join(sorted(fields))}",
                )
            ]
        template.format(**fields)
    except (ValueError, IndexError) as exc:
        return [src.problem(path, f"not a valid template: {exc}")]
    return []


def _job_problems(src: YamlSource, path: tuple, job: Job) -> list[Problem]:
    given = [job.cron, job.interval_minutes, job.interval_seconds]
    if sum(x is not None for x in given) != 1:
        return [
            src.problem(
                path, "give exactly one of `cron`, `interval_minutes` or `interval_seconds`"
            )
        ]
    if job.cron is not None:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(job.cron)
        except ValueError as exc:
            return [src.problem(path + ("cron",), f"not a valid crontab expression: {exc}")]
    return []


def _schedule_problems(src: YamlSource, schedule: Schedule) -> list[Problem]:
    """Job names the scheduler knows, and a time zone it can use."""
    out = [
        src.problem(
            ("schedule", "jobs", name), f"unknown job; known jobs: {', '.join(DEFAULT_JOBS)}"
        )
        for name in schedule.jobs
        if name not in DEFAULT_JOBS
    ]
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(schedule.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        out.append(
            src.problem(("schedule", "timezone"), f"unknown time zone {schedule.timezone!r}")
        )
    return out
