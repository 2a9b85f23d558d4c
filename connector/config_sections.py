"""The sections of app.yaml other than the policy ones (connector.domain.policy): state, sync,
sandbox, CRM connections, schedule, webhooks, console and notify. Frozen pydantic models,
unknown keys forbidden; connector.config assembles them into AppConfig."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StateSettings(Section):
    url: str | None = Field(None, description="SQLAlchemy URL; default sqlite under data_dir")


class SyncSettings(Section):
    overlap_seconds: int = Field(300, ge=0, le=86_400)
    page_size: int = Field(2000, ge=200, le=2000)
    retry_attempts: int = Field(5, ge=1, le=20)
    retry_max_wait_seconds: float = Field(30, ge=0, le=600)
    #: a run whose share of records failing to map exceeds this writes nothing (see
    #: connector/services/guard.py; `renewals sync --force` overrides)
    max_map_failure_share: float = Field(0.02, ge=0, le=1)


class SandboxSettings(Section):
    database: Path | None = None
    batch_size: int = Field(200, ge=1, le=10_000)
    seed: int = 42


class SalesforceSettings(Section):
    """How to reach the org. Credentials come from SALESFORCE_* environment variables."""

    auth: Literal["password", "jwt", "session"] = Field(
        "password",
        description="password: SALESFORCE_USERNAME/PASSWORD/SECURITY_TOKEN; jwt: "
        "SALESFORCE_USERNAME/CONSUMER_KEY/PRIVATE_KEY_FILE; session: "
        "SALESFORCE_SESSION_ID/INSTANCE_URL",
    )
    domain: str = Field("login", pattern=r"^[A-Za-z0-9.-]+$", description="login, test, or acme.my")
    api_version: str = Field("59.0", pattern=r"^\d{2,3}\.0$")
    timeout_seconds: float = Field(60, gt=0, le=600)
    api_usage_stop_share: float = Field(0.8, gt=0, le=1)
    pricebook_id: str | None = Field(None, description="Pricebook2Id of renewals; default standard")
    #: a first or full read of a kind returning more rows than this runs as a Bulk API 2.0
    #: query job (tens of calls for a million rows instead of 500 REST pages); null: never
    bulk_threshold: int | None = Field(
        50_000,
        ge=1,
        description="rows above which a first or full read of a kind uses a Bulk API 2.0 query "
        "job; null turns bulk reads off",
    )
    #: composite: up to five sObject Collections requests (1,000 records) in one Composite call,
    #: which Salesforce counts as one API call; collections: one call per 200 records
    write_api: Literal["composite", "collections"] = Field(
        "composite",
        description="composite: 1,000 records a write call (five sObject Collections requests "
        "in one Composite request); collections: 200 records a call",
    )
    #: a write group (one kind, one operation) of more records than this goes as a Bulk API 2.0
    #: ingest job (about six calls a job, up to 50,000 records) instead of write_api's calls.
    #: Salesforce: "Any data operation that includes more than 2,000 records is a good candidate
    #: for Bulk API 2.0 [...] Jobs with fewer than 2,000 records should involve 'bulkified'
    #: synchronous calls in REST (for example, Composite)" (https://developer.salesforce.com/docs/
    #: platform/salesforce-app-limits-cheatsheet/guide/salesforce-app-limits-platform-bulkapi.html)
    bulk_write_threshold: int | None = Field(
        2_000,
        ge=1,
        description="records above which a write group goes as a Bulk API 2.0 ingest job; "
        "null turns bulk writes off",
    )


class HubspotLimits(Section):
    """The app's rate-limit tier (HubSpot usage guidelines): the burst limit per 10 s and the
    separate CRM search budget (search is exempt from the 10 s limit but has its own)."""

    app_type: Literal["private", "public"] = "private"
    #: requests per rolling 10 s; default by app type: private 100 (Free/Starter), public 110
    requests_per_10s: int | None = Field(None, ge=1, le=250)
    #: CRM search requests per second (HubSpot allows 5 per account)
    search_per_second: int = Field(4, ge=1, le=5)
    #: the share of the 10 s limit the connector spends: HubSpot counts every caller of a portal
    #: against one limit, so the rest is left to the portal's other integrations
    use_share: float = Field(0.9, gt=0, le=1)

    @property
    def tier(self) -> int:
        """The portal's limit per rolling 10 s, as HubSpot counts it."""
        return self.requests_per_10s or (110 if self.app_type == "public" else 100)

    @property
    def burst(self) -> int:
        """The requests per rolling 10 s the connector allows itself (use_share of the tier)."""
        return max(1, int(self.tier * self.use_share))


class HubspotSettings(Section):
    """Where the connector finds contracts in a HubSpot portal and how it writes renewals.
    The access token comes from the HUBSPOT_ACCESS_TOKEN environment variable only."""

    base_url: str = Field("https://api.hubapi.com", pattern=r"^https?://")
    #: closed-won deals of a pipeline, a custom object, or the contracts object
    contract_source: Literal["deals", "custom_object", "contracts"] = "deals"
    #: object type the contracts live in: deals, a custom object's id (2-1234567) or name
    contract_object: str = "deals"
    contract_pipeline: str | None = "default"
    contract_stages: tuple[str, ...] = ("closedwon",)
    #: pipeline the renewal deals are created in (its stage ids go in renewals.*_stage*)
    renewal_pipeline: str = "default"
    #: association label (contact -> company) marking a renewal contact; null: a property
    renewal_contact_label: str | None = "Renewal contact"
    property_group: str = "renewals"
    timeout_seconds: float = Field(30, gt=0, le=300)
    #: the portal (hub) id of app.yaml's own portal: HubSpot webhook events are routed to a
    #: connection by their portalId (null: the default connection takes events of portals no
    #: other connection claims)
    portal_id: str | None = Field(None, pattern=r"^[0-9]{1,20}$")
    limits: HubspotLimits = HubspotLimits()


class Job(Section):
    enabled: bool = True
    cron: str | None = None
    interval_minutes: int | None = Field(None, ge=1)
    interval_seconds: int | None = Field(None, ge=1)
    misfire_grace_seconds: int | None = Field(None, ge=1)


#: The scheduled jobs `renewals scheduler` knows (jobs/), with their default schedules.
DEFAULT_JOBS: dict[str, dict] = {
    "incremental_sync": {"interval_minutes": 15},
    "daily_renewal_scan": {"cron": "0 6 * * *"},
    "daily_playbook_health": {"cron": "30 6 * * *"},
    "quarterly_qbr_tasks": {"cron": "0 7 1 1,4,7,10 *"},
    "daily_reconciliation": {"cron": "0 2 * * *"},
}


class Schedule(Section):
    timezone: str = "UTC"
    #: a run that could not start on time (downtime) still runs this late, once (coalesced)
    misfire_grace_seconds: int = Field(900, ge=1, le=7 * 86_400)
    #: how long a job waits for a run already in progress (a sync, a webhook batch) to end
    lock_wait_seconds: float = Field(600, ge=0, le=86_400)
    #: a running job's claim on its slot lasts this long, renewed every third of it while the
    #: job runs; a claim left by a scheduler that died lapses and another scheduler runs the
    #: slot (if still within its misfire grace)
    lease_seconds: int = Field(60, ge=2, le=3600)
    jobs: dict[str, Job] = {}

    def effective_jobs(self) -> dict[str, Job]:
        """Every known job: its default schedule unless app.yaml gives one."""
        out = {name: Job(**spec) for name, spec in DEFAULT_JOBS.items()}
        out.update(self.jobs)
        return out


#: What the HubSpot public app asks for on install (connector/oauth): CRM objects, schemas and
#: owners; tasks need the contacts scopes. crm.objects.custom.* are optional (contracts in a
#: custom object).
HUBSPOT_SCOPES = (
    "oauth",
    "crm.objects.owners.read",
    "crm.objects.companies.read",
    "crm.objects.companies.write",
    "crm.objects.contacts.read",
    "crm.objects.contacts.write",
    "crm.objects.deals.read",
    "crm.objects.deals.write",
    "crm.objects.line_items.read",
    "crm.objects.line_items.write",
    "crm.schemas.deals.read",
    "crm.schemas.deals.write",
    "crm.schemas.companies.read",
    "crm.schemas.companies.write",
    "crm.schemas.contacts.read",
    "crm.schemas.line_items.read",
)
HUBSPOT_OPTIONAL_SCOPES = ("crm.objects.custom.read", "crm.objects.custom.write")


class OAuthSettings(Section):
    """Installing as a CRM app: the OAuth routes of `renewals serve` (/oauth/<crm>/install and
    /oauth/<crm>/callback). App credentials come from HUBSPOT_APP_CLIENT_ID/_SECRET and
    SALESFORCE_APP_CONSUMER_KEY/_SECRET."""

    #: this deployment's public URL (the redirect URLs registered with the CRMs are
    #: <it>/oauth/hubspot/callback and <it>/oauth/salesforce/callback); default
    #: webhooks.public_base_url, else the URL the browser used
    redirect_base_url: str | None = Field(None, pattern=r"^https?://")
    hubspot_authorize_url: str = Field(
        "https://app.hubspot.com/oauth/authorize", pattern=r"^https?://"
    )
    hubspot_scopes: tuple[str, ...] = HUBSPOT_SCOPES
    hubspot_optional_scopes: tuple[str, ...] = HUBSPOT_OPTIONAL_SCOPES
    #: where Salesforce admins log in to authorise; default https://<salesforce.domain>.
    #: salesforce.com (login, test, or a My Domain)
    salesforce_login_url: str | None = Field(None, pattern=r"^https?://")
    salesforce_scopes: tuple[str, ...] = ("api", "refresh_token")
    #: access tokens are refreshed this long before they expire
    refresh_before_seconds: int = Field(300, ge=0, le=3600)
    #: an install not finished within this many minutes must start again
    flow_minutes: int = Field(15, ge=1, le=120)


class WebhookSettings(Section):
    """`renewals serve`: the webhook receiver and its inbox worker."""

    #: the public URL HubSpot calls (scheme and host, as seen from outside the proxy); the v3
    #: signature covers the full URI, so it is rebuilt from this, never from the Host header
    public_base_url: str | None = None
    max_body_bytes: int = Field(1_048_576, ge=1024, le=64 * 1_048_576)
    #: event ids are remembered at least this long: redeliveries within it have no effect
    dedupe_hours: int = Field(72, ge=72, le=24 * 90)
    signature_tolerance_seconds: int = Field(300, ge=1, le=3600)
    #: decode %XX escapes in the URI before checking a HubSpot v3 signature
    hubspot_decode_uri: bool = True
    #: Salesforce org whose outbound messages are accepted; SALESFORCE_ORG_ID overrides it
    salesforce_org_id: str | None = Field(None, pattern=r"^[a-zA-Z0-9]{15}([a-zA-Z0-9]{3})?$")
    worker_batch_size: int = Field(200, ge=1, le=10_000)
    worker_poll_seconds: float = Field(1.0, gt=0, le=60)
    #: the inbox worker process's niceness: under load the web workers' acks come first
    worker_nice: int = Field(10, ge=0, le=19)
    #: /healthz answers 503 "degraded" when a delivery or a due event has waited this long
    health_max_wait_seconds: float = Field(300, ge=1, le=86_400)
    #: a request whose body has not fully arrived this long after it began is cut (408)
    request_body_seconds: float = Field(10, gt=0, le=300)
    retry_attempts: int = Field(5, ge=1, le=50)
    retry_backoff_seconds: float = Field(30, ge=0, le=3600)
    retry_max_backoff_seconds: float = Field(3600, ge=0, le=86_400)


class WorkerSettings(Section):
    """Where runs happen. `local` (the default, no broker): `renewals serve` drains webhook
    deliveries in its own worker process and `renewals scheduler` runs each job itself.
    `celery`: both enqueue tasks (sync, webhook_batch, run_job) that `renewals worker --engine
    celery` processes run, on any number of machines; rate limits of each portal and org are
    then shared through Redis. URLs with a password belong in the environment:
    RENEWALS_BROKER_URL and RENEWALS_REDIS_URL win over these."""

    engine: Literal["local", "celery"] = "local"
    #: the Celery broker: redis://... (default) or amqp://... (RabbitMQ)
    broker_url: str = Field("redis://127.0.0.1:6379/0", pattern=r"^(redis|rediss|amqp|amqps)://")
    #: Redis for what processes share: rate-limit buckets, the daily-use stop, pending-task
    #: marks. null: the broker's Redis on Celery; on `local`, each process counts alone
    redis_url: str | None = Field(None, pattern=r"^(redis|rediss|unix)://")
    #: the queue tasks go to (one per deployment sharing a broker)
    queue: str = Field("renewals", pattern=r"^[A-Za-z0-9._-]{1,64}$")
    #: Redis broker: an unacknowledged task (its worker died) is handed out again after this
    visibility_timeout_seconds: int = Field(3600, ge=10, le=7 * 86_400)
    #: a task finding its connection's run in progress goes back to the queue for this long
    busy_retry_seconds: float = Field(5, gt=0, le=3600)
    #: a webhook_batch task processes this many batches of its connection's inbox, then goes
    #: to the back of the queue if more is due (the other connections' tasks first)
    webhook_batches_per_task: int = Field(20, ge=1, le=10_000)

    @property
    def shared_url(self) -> str | None:
        """The Redis every process shares rate limits and pending marks through: redis_url,
        else, on Celery with a Redis broker, the broker's; None: each process counts alone."""
        if self.redis_url:
            return self.redis_url
        redis_broker = self.broker_url.startswith(("redis://", "rediss://"))
        return self.broker_url if self.engine == "celery" and redis_broker else None


class ConsoleSettings(Section):
    """The admin console under /admin on `renewals serve` (on once a user exists and
    RENEWALS_SECRET_KEY is set)."""

    #: a signed-in session lasts this long
    session_hours: float = Field(8, gt=0, le=24 * 30)
    #: failed sign-ins for one email (or one client address, x4) within `lockout_minutes`
    #: before further attempts are refused until the window passes
    login_attempts: int = Field(5, ge=1, le=100)
    lockout_minutes: int = Field(15, ge=1, le=24 * 60)
    #: behind one reverse proxy: trust its X-Forwarded-Proto/-For (https, the client address)
    trust_proxy: bool = False


#: alert targets are environment variables of this prefix (the logs redact their values)
NOTIFY_PREFIX = "RENEWALS_NOTIFY_"


class NotifySettings(Section):
    """Alerts (connector/services/alerts.py) to Slack, Teams or e-mail through Apprise: off
    until `targets` names an environment variable holding an Apprise URL (never the URL: it
    carries tokens)."""

    targets: tuple[str, ...] = ()
    #: a run ends failed, stopped or interrupted
    run_failed: bool = True
    #: open dead letters pass this; again after they fall back to it (null: off)
    dead_letters_over: int | None = Field(50, ge=0)
    #: the webhook inbox's oldest waiting work waits longer than this (null: off)
    inbox_wait_minutes: int | None = Field(15, ge=1, le=7 * 24 * 60)
    #: when the daily digest of accounts turned red goes out, HH:MM in schedule.timezone
    #: (`renewals scheduler` sends it; null: off)
    red_digest_at: str | None = "08:00"
    #: the longest a message waits for its targets: sending never holds up a run longer
    timeout_seconds: float = Field(10, gt=0, le=120)

    @field_validator("targets")
    @classmethod
    def _target_names(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for name in names:
            if not name.startswith(NOTIFY_PREFIX) or name == NOTIFY_PREFIX:
                raise _problem(
                    f"{name!r}: name an environment variable starting with {NOTIFY_PREFIX} "
                    "that holds the Apprise URL (the URL itself never goes in app.yaml)"
                )
            if not name.replace("_", "").isalnum() or not name.isupper():
                raise _problem(f"{name!r}: use capitals, digits and underscores")
        if len(set(names)) != len(names):
            raise _problem("a target is named twice")
        return names

    @field_validator("red_digest_at", mode="before")
    @classmethod
    def _time_of_day(cls, value: object) -> str | None:
        if isinstance(value, int) and not isinstance(value, bool):
            value = f"{value // 60:02d}:{value % 60:02d}"  # YAML 1.1 reads 12:30 as 750
        if value is not None and not isinstance(value, str):
            raise _problem(f'{value!r}: give a time of day as HH:MM, e.g. "08:00"')
        hours, sep, minutes = (value or "00:00").partition(":")
        if not (sep and len(hours) == len(minutes) == 2 and f"{hours}{minutes}".isdigit()):
            raise _problem(f'{value!r}: give a time of day as HH:MM, e.g. "08:00"')
        if int(hours) > 23 or int(minutes) > 59:
            raise _problem(f"{value!r}: not a time of day")
        return value

    def digest_time(self) -> tuple[int, int] | None:
        """(hour, minute) of the red digest; None: no digest."""
        if not self.on or self.red_digest_at is None:
            return None
        hours, _, minutes = self.red_digest_at.partition(":")
        return int(hours), int(minutes)

    @property
    def on(self) -> bool:
        return bool(self.targets)


def _problem(message: str) -> PydanticCustomError:
    """A validation error that reads as `message` alone (no "Value error," before it)."""
    return PydanticCustomError("notify", message)
