"""One settings object: built-in defaults < JSON config file < environment variables < AWS secrets."""
from __future__ import annotations

import os
from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, JsonConfigSettingsSource, SettingsConfigDict

CONFIG_FILE_ENV = "CRM_CONFIG_FILE"
DEV_JWT_SECRET = "dev-only-jwt-secret-not-for-production"
DEV_VENDOR_KEY = "dev-only-vendor-key"
DEV_WEBHOOK_SECRET = "dev-only-webhook-secret"
DEV_UNSUBSCRIBE_SECRET = "dev-only-unsubscribe-secret"
DEFAULT_MONGO_URI = "mongodb://127.0.0.1:27017/"
MIN_PRODUCTION_SECRET_LENGTH = 32
# crm.access.principals.Role's values (not imported: config imports nothing of the CRM's).
ROLE_NAMES = ("admin", "marketer", "analyst")
# API.md: a role change, a disabling or a revocation reaches credentials already issued within 60 seconds.
MAX_AUTH_CACHE_SECONDS = 30


class ConfigError(RuntimeError):
    """The configuration cannot be used in this environment."""


class Settings(BaseSettings):
    # Empty variables count as unset: a template parameter left blank must not mask the config file.
    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False, env_ignore_empty=True)

    env: str = "development"
    port: int = 4000
    log_level: str = "INFO"

    mongo_uri: SecretStr = SecretStr(DEFAULT_MONGO_URI)
    mongo_db: str = "crm"
    # Short enough that a down database becomes a 503 well inside API Gateway's 29 s.
    mongo_timeout_ms: int = 3000
    # Longer than the slowest operation we allow (an audience count), shorter than API Gateway's 29 s.
    mongo_socket_timeout_ms: int = 25_000

    jwt_secret: SecretStr = SecretStr(DEV_JWT_SECRET)
    jwt_ttl_seconds: int = 3600
    jwt_issuer: str = "mini-crm"

    aws_region: str = "us-east-1"
    sqs_endpoint_url: str | None = None
    sqs_customer_queue_url: str = ""
    sqs_order_queue_url: str = ""
    sqs_campaign_fanout_queue_url: str = ""
    sqs_campaign_send_queue_url: str = ""
    sqs_vendor_receipt_queue_url: str = ""
    # Verified receipts, applied by their consumer a batch at a time.
    sqs_delivery_receipt_queue_url: str = ""
    # Clicks on tracked links, put there by the redirect and applied by their consumer a batch at a time.
    sqs_click_queue_url: str = ""
    # SQS accepts up to 256 KiB per message; records are packed up to this size.
    sqs_max_message_bytes: int = 256 * 1024
    sqs_timeout_seconds: float = 5.0

    google_client_id: str = ""
    google_client_secret: SecretStr = SecretStr("")
    google_callback_url: str = ""
    # Any OpenID Connect provider found by discovery at this issuer can stand in for Google.
    google_oidc_issuer: str = "https://accounts.google.com"
    # Who may sign in besides invited users: addresses of these comma-separated domains (created with default_role)
    # and these comma-separated addresses (admins from their first sign-in). Production refuses to start its sign-in
    # function with neither.
    allowed_email_domains: str = ""
    admin_emails: str = ""
    default_role: str = "analyst"
    # An allowed domain is a Google Workspace domain: the ID token's `hd` claim must name it. Off for a domain whose
    # people have plain Google accounts (their address verified by Google, no `hd`).
    require_hosted_domain: bool = True
    # How long a container trusts what it read about a user or an API key; a role change, a disabling or a
    # revocation reaches tokens and keys already issued within this (at most 60 s, as API.md promises). 0: no cache.
    auth_cache_seconds: float = 10.0
    # When set, a finished sign-in redirects here with the token in the URL fragment.
    frontend_url: str = ""
    oidc_timeout_seconds: float = 10.0

    # The messaging vendor: where sends go, and what it signs its delivery receipts with.
    vendor_url: str = ""
    vendor_api_key: SecretStr = SecretStr(DEV_VENDOR_KEY)
    webhook_secret: SecretStr = SecretStr(DEV_WEBHOOK_SECRET)
    vendor_timeout_seconds: float = 5.0
    vendor_max_per_second: float = 50.0
    # Where campaign messages go: "mock" (the mock vendor above) or "ses" (Amazon SES e-mail from this verified
    # address, with this configuration set's events coming back; SES_ENDPOINT_URL only for a local SES).
    channel: Literal["mock", "ses"] = "mock"
    ses_from_address: str = ""
    ses_configuration_set: str = ""
    ses_endpoint_url: str | None = None
    # The account's SES sending rate (its quota, messages a second), shared by the send function's containers:
    # each keeps its share, the rate over send_concurrency (the most containers the send function runs at once).
    ses_max_per_second: float = 14.0
    send_concurrency: int = 1
    # Where recipients reach the unsubscribe page (the HTTP API's URL), and what its links are signed with.
    public_url: str = "http://localhost:4000"
    unsubscribe_secret: SecretStr = SecretStr(DEV_UNSUBSCRIBE_SECRET)
    # Every http(s) link of a campaign message but its unsubscribe link is sent as a signed /c/ link on public_url,
    # which counts the click and redirects (crm.engagement.links); signed with unsubscribe_secret.
    track_clicks: bool = True
    # The mock vendor: where it reports, how it decides (seeded, so tests can predict), how late.
    receipt_url: str = ""
    mock_vendor_failure_rate: float = 0.1
    mock_vendor_seed: str = "mini-crm"
    mock_vendor_delay_seconds: int = 1

    # A request's database work must end this long before the function's timeout, leaving time to answer 503.
    request_deadline_margin_ms: int = 1500
    # A message sent with no delivery receipt after this long is settled by asking the vendor.
    receipt_timeout_seconds: int = 900
    # A log not sent this long after its send was queued has lost its send message: the reconciler queues it
    # again, up to max_send_attempts times, then fails it (send_failed).
    send_timeout_seconds: int = 3600
    max_send_attempts: int = 3
    # A campaign's counters are rolled up from its logs at most once in this many seconds by the consumers that
    # change its logs, and every this many seconds by the scheduled roll-up: one write to the campaign for each
    # roll-up, however many recipients it counts. 0: every batch rolls up (in-process tests).
    roll_up_seconds: float = 5.0
    # A campaign's fan-out job is queued just before the campaign is stored; the delay lets the store land first.
    fanout_start_delay_seconds: int = 2
    # A fan-out that has not recorded a page for this long has lost its job: the reconciler queues it again.
    fanout_stall_seconds: int = 300
    # Counting an audience inside a request: past this the API answers 503 rather than hit API Gateway's 29 s.
    audience_count_time_limit_ms: int = 20_000

    # "opt_out": everyone may be messaged unless they denied consent; "opt_in": only those who granted it.
    consent_mode: Literal["opt_out", "opt_in"] = "opt_out"
    # At most n messages of campaigns per person in the last d days, as "n/dd" ("2/7d"); empty: no cap.
    frequency_cap: str = Field(default="", pattern=r"^([1-9][0-9]{0,2}/[1-9][0-9]{0,2}d)?$")
    # An order counts for the most recent campaign message its customer was sent this many days before it.
    attribution_days: int = Field(default=5, ge=1, le=90)

    # "parser" (offline, the default) or "bedrock" (Amazon Bedrock's Converse API).
    ai_provider: str = "parser"
    bedrock_model_id: str = "amazon.nova-lite-v1:0"
    bedrock_timeout_seconds: float = 18.0

    # In AWS the secrets themselves are not in the environment, only their names.
    mongo_uri_secret_name: str = ""
    jwt_secret_name: str = ""
    google_client_secret_name: str = ""
    vendor_api_key_name: str = ""
    webhook_secret_name: str = ""
    unsubscribe_secret_name: str = ""

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        sources = [init_settings, env_settings]
        config_file = os.environ.get(CONFIG_FILE_ENV)
        if config_file:
            sources.append(JsonConfigSettingsSource(settings_cls, json_file=config_file))
        return tuple(sources)

    @property
    def google_oauth_configured(self) -> bool:
        return bool(self.google_client_id and self.google_client_secret.get_secret_value())

    @property
    def is_development(self) -> bool:
        return self.env.lower() in {"development", "dev"}

    @property
    def is_deployed(self) -> bool:
        """Every stage but development (staging as production): no default secrets, no weak ones, no dev tokens."""
        return not self.is_development

    @property
    def email_domains(self) -> frozenset[str]:
        return frozenset(d.strip().lower().lstrip("@") for d in self.allowed_email_domains.split(",") if d.strip())

    @property
    def admin_email_set(self) -> frozenset[str]:
        return frozenset(e.strip().lower() for e in self.admin_emails.split(",") if e.strip())

    def secret(self, field: str) -> str:
        """A secret's value; ConfigError when this function was given none (production has no defaults)."""
        value = getattr(self, field).get_secret_value()
        if not value:
            raise ConfigError(f"{field.upper()} is not configured for this function")
        return value

    @model_validator(mode="after")
    def _resolve_secrets(self) -> Settings:
        for field, (name_field, _) in SECRETS.items():
            name = getattr(self, name_field)
            if name:
                setattr(self, field, SecretStr(_fetch_secret(name)))
            elif self.is_deployed and field not in self.model_fields_set:
                # Each function is given only the secrets it uses; the others must not fall back to a default.
                setattr(self, field, SecretStr(""))
        if self.is_deployed:
            _refuse_weak_secrets(self)
        elif os.environ.get("AWS_LAMBDA_RUNTIME_API") and not os.environ.get("AWS_SAM_LOCAL"):
            # Lambda's own runtime: a stack someone deployed as development would hand admin tokens to anyone.
            raise ConfigError("ENV development runs only locally (make run, sam local); deploy staging or production")
        if self.default_role not in ROLE_NAMES:
            raise ConfigError(f"DEFAULT_ROLE must be one of {', '.join(ROLE_NAMES)}")
        if not 0 <= self.auth_cache_seconds <= MAX_AUTH_CACHE_SECONDS:
            raise ConfigError(f"AUTH_CACHE_SECONDS must be between 0 and {MAX_AUTH_CACHE_SECONDS}")
        return self


# Each secret setting: the setting naming where it is kept in AWS, and its development default.
SECRETS = {
    "mongo_uri": ("mongo_uri_secret_name", DEFAULT_MONGO_URI),
    "jwt_secret": ("jwt_secret_name", DEV_JWT_SECRET),
    "google_client_secret": ("google_client_secret_name", ""),
    "vendor_api_key": ("vendor_api_key_name", DEV_VENDOR_KEY),
    "webhook_secret": ("webhook_secret_name", DEV_WEBHOOK_SECRET),
    "unsubscribe_secret": ("unsubscribe_secret_name", DEV_UNSUBSCRIBE_SECRET),
}
SIGNING_KEYS = ("jwt_secret", "vendor_api_key", "webhook_secret", "unsubscribe_secret")


def _fetch_secret(name: str) -> str:
    """A secret from Secrets Manager, or from SSM Parameter Store when named like a parameter path."""
    from aws_lambda_powertools.utilities import parameters  # imports boto3: only where secrets are used

    if name.startswith("/"):
        return parameters.get_parameter(name, decrypt=True, max_age=300)
    return parameters.get_secret(name, max_age=300)


def _refuse_weak_secrets(settings: Settings) -> None:
    """A deployed stage refuses to start with a key it was given that is a development default or short."""
    for field in SIGNING_KEYS:
        _, development_default = SECRETS[field]
        key = getattr(settings, field).get_secret_value()
        if key and (key == development_default or len(key) < MIN_PRODUCTION_SECRET_LENGTH):
            raise ConfigError(f"{field.upper()} is a development default or shorter than "
                              f"{MIN_PRODUCTION_SECRET_LENGTH} characters")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
