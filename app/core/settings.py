"""The one settings object. Every knob is an env var prefixed STRATA_."""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SECRET_KEY = "change-me-embedded-default-secret"  # noqa: S105 - refused in production
MIN_SECRET_KEY_LENGTH = 32


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STRATA_", env_file=".env", extra="ignore")

    env: Literal["dev", "prod"] = "dev"
    secret_key: str = DEFAULT_SECRET_KEY
    data_dir: Path = Path("data")
    host: str = "0.0.0.0"
    port: int = 3000
    # The port browsers open pages and the websocket on, when a reverse proxy or load balancer
    # in front listens on another one over plain http (the frontend bundle bakes it in; behind
    # https the browser uses the page's own port). Empty: STRATA_PORT.
    public_port: int | None = None
    # Web server worker processes (granian) behind STRATA_PORT. More than one
    # needs the UI state in a shared Redis (see ui_state_in_redis).
    web_workers: int = 1
    # Built ONNX models; defaults to <data_dir>/models.
    models_dir: Path | None = None
    # The only folder an admin's model import reads from; defaults to <data_dir>/imports.
    model_import_dir: Path | None = None

    # Files (uploads, datasets, model artifacts, batch files, backups; app/core/storage.py): under
    # files_dir (default: the data dir; a shared mount such as NFS or a ReadWriteMany volume when
    # web and workers run on several machines), or, when storage_url is s3://bucket/prefix, in an
    # S3-compatible store (MinIO, Ceph, AWS) at s3_endpoint_url (empty: AWS) with these credentials
    # (empty: boto3's own chain: AWS_* env vars, instance role).
    files_dir: Path | None = None
    storage_url: str = ""
    s3_endpoint_url: str = ""
    s3_region: str = ""
    s3_access_key_id: str = ""
    s3_secret_access_key: SecretStr = SecretStr("")

    # External services; empty means "start the embedded one".
    database_url: str = ""
    redis_url: str = ""
    chroma_url: str = ""
    # Ports of the embedded services, used only when the URLs above are empty.
    embedded_redis_port: int = 6390
    embedded_chroma_port: int = 8765

    admin_email: str = "admin@strata.local"
    admin_password: str = ""

    session_hours: float = 12.0
    # Password sign-in: login_max_failures wrong passwords for one account from one client
    # address lock that address out of it for login_lockout_minutes; the account itself locks
    # for everyone only after login_account_max_failures from all addresses together. Each
    # address may try login_attempts_per_minute sign-ins a minute, whatever the accounts.
    login_max_failures: int = 5
    login_lockout_minutes: float = 15.0
    login_account_max_failures: int = 100
    login_attempts_per_minute: int = 30
    # Reverse proxies (comma-separated addresses or networks, e.g. 10.0.0.0/8) whose
    # X-Forwarded-For names the client; from any other peer the header is ignored.
    trusted_proxies: str = ""
    # Off: only STRATA_ADMIN_EMAIL (the break-glass admin) signs in with a password; everyone
    # else uses company sign-in.
    password_login: bool = True

    # Company sign-in with OpenID Connect (app/auth/oidc.py), on when issuer and client id are
    # set. Roles come from the ID token's oidc_role_claim (a string or a list, e.g. groups):
    # a value listed in oidc_admin_values, oidc_staff_values or oidc_viewer_values (comma-
    # separated) gives that role, the highest one winning; anyone else gets oidc_default_role,
    # where "none" refuses them.
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: str = ""
    oidc_provider_name: str = "your company account"
    oidc_scopes: str = "openid email profile"
    oidc_role_claim: str = "groups"
    oidc_admin_values: str = ""
    oidc_staff_values: str = ""
    oidc_viewer_values: str = ""
    oidc_default_role: Literal["none", "viewer"] = "none"
    # The callback URL registered at the provider; empty: this server's own
    # /api/v1/auth/oidc/callback as the request reached it (set it behind a TLS proxy).
    oidc_redirect_url: str = ""
    oidc_timeout_seconds: float = 10.0
    oidc_clock_skew_seconds: int = 60

    job_max_tries: int = 3
    job_timeout_seconds: int = 3600
    worker_heartbeat_seconds: float = 5.0
    # Workers run their jobs at this niceness (Linux: 0-19, higher yields more) so that an answer
    # or prediction in the web process beside them gets the cores first (benchmarks/contention.py).
    worker_niceness: int = Field(default=15, ge=0, le=19)
    # A worker serves its machine's metrics on this port (0: off) for Prometheus, where no web
    # process beside it serves them on /metrics (workers on machines of their own).
    worker_metrics_port: int = 0
    worker_metrics_host: str = "127.0.0.1"

    # Knowledge bases: uploads above this size are refused before anything is stored.
    upload_max_mb: float = 50.0
    # Each document is parsed in a child process with these limits (wall-clock and CPU time,
    # address space); PDFs beyond pdf_max_pages and DOCX archives that would unpack beyond
    # archive_max_expanded_mb or archive_max_members are refused before they are read.
    parse_timeout_seconds: float = 300.0
    parse_max_memory_mb: int = 1024
    pdf_max_pages: int = 2000
    archive_max_expanded_mb: int = 256
    archive_max_members: int = 10000
    # Datasets (CSV, JSONL, Parquet): uploads above dataset_max_mb are refused before anything is
    # stored; each new file is checked and profiled in a child process with these limits.
    dataset_max_mb: float = 200.0
    dataset_parse_timeout_seconds: float = 600.0
    dataset_parse_max_memory_mb: int = 2048
    # Chunks in embedder word pieces (the embedder reads at most 256); overlap keeps
    # a sentence cut at a chunk border whole in one of the two.
    chunk_tokens: int = 200
    chunk_overlap_tokens: int = 40
    embed_batch_size: int = 32
    retrieval_top_k: int = 8
    # Weight of the BM25 ranking against the dense one in hybrid search (reciprocal rank fusion);
    # 0.25 won on half of the Python FAQ benchmark and held up on the other half (benchmarks/retrieval.py).
    retrieval_lexical_weight: float = 0.25

    # Requests a minute per user and per API key (an admin can set another per key).
    rate_limit_per_minute: int = 120
    # Answers one user may have being written at once (Ask page, /api/v1/ask, /v1/chat/completions).
    max_streams_per_user: int = 2
    # Predictions: cached per (model version, input) in Redis; a sample of them logged.
    prediction_cache_ttl_seconds: int = 3600
    prediction_log_sample_rate: float = 0.1
    # Serving: concurrent requests are gathered for up to serving_batch_wait_ms into one
    # model call of at most serving_max_batch inputs (on 2-core AVX2 machines MiniLM ran
    # fastest per input in batches of 8); at most serving_max_loaded_versions model
    # versions stay in memory (least recently used goes first).
    serving_max_batch: int = 8
    serving_batch_wait_ms: float = 3.0
    serving_max_loaded_versions: int = 4
    # Batch scoring (app/batch) shares the machine with online predictions: at most
    # batch_max_rows_per_second rows a second per job (0: no cap), on batch_threads onnxruntime
    # threads (0: every core but one, at least one; on 2 cores one is left for predictions).
    batch_max_rows_per_second: float = 0.0
    batch_threads: int = 0

    # Answer generation: an OpenAI-compatible server when llm_base_url is set (vLLM,
    # TGI, Ollama, llama.cpp: e.g. http://host:8000/v1), else the built-in SmolLM2,
    # else an extractive answer. Temperature 0 decodes greedily.
    llm_base_url: str = ""
    llm_model: str = ""
    llm_api_key: str = ""
    llm_timeout_seconds: float = 60.0
    llm_max_tokens: int = Field(default=384, ge=1)
    llm_temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    # Penalising repeated tokens garbles copied figures (11:30 -> 12:30) in a small model;
    # loops are stopped by a no-repeat n-gram rule instead. 1.0 = off; it divides logits, so never 0.
    llm_repetition_penalty: float = Field(default=1.0, gt=0.0)
    # Prompt budget (passages are cut to fit): the built-in model reads 8k tokens, but on
    # 2 CPU cores its first pass over ~1000 prompt tokens already takes about a second.
    llm_max_prompt_tokens: int = 1024
    # Grounding (app/ask/grounding.py): an answer sentence is supported by its passages when its
    # score (half embedding similarity, half content-word overlap) reaches the sentence threshold;
    # an answer whose supported share falls below the answer threshold is flagged, and the built-in
    # model's is replaced by the extractive answer. Chosen on half of the Python FAQ questions and
    # checked on the other half (benchmarks/ask.py): 98% of answers the passages do not hold
    # (another question's gold answer) flagged, no extractive answer flagged.
    grounding_sentence_threshold: float = 0.625
    grounding_answer_threshold: float = 0.4

    # The HTTP edge (app/core/http.py): request bodies are refused (413) as they arrive once
    # over their route's limit: request_max_kb for JSON routes, upload_request_max_mb for one
    # upload request (all its files; never below upload_max_mb).
    request_max_kb: int = 1024
    upload_request_max_mb: float = 200.0
    # /api/v1/health answers from one check of every component for this long.
    health_cache_seconds: float = 2.0
    # /metrics and the OpenAPI docs: open to anyone, or admins only (and, for metrics, the
    # bearer token metrics_token of a Prometheus scraper). Unset: open in dev, closed in prod.
    public_metrics: bool | None = None
    public_api_docs: bool | None = None
    metrics_token: str = ""
    # Other sites' origins (comma-separated, e.g. https://portal.example.com) whose pages may
    # call the API with credentials. The app's own origin needs no entry.
    cors_origins: str = ""

    # The audit log (app/audit): entries older than audit_retention_days are deleted by the
    # worker's daily retention job (app/audit/jobs.py); 0 keeps them forever.
    audit_retention_days: int = Field(default=365, ge=0, le=36500)

    # Alerts and webhooks (app/alerts, app/webhooks): the worker checks every model's accuracy and
    # error rate against its thresholds every alert_check_minutes (a divisor of 60 keeps the
    # interval even across the hour). A webhook delivery is tried webhook_max_attempts times,
    # each POST waiting at most webhook_timeout_seconds; after the n-th failure the next try
    # waits webhook_retry_seconds * 4^(n-1) (30 s, 2 min, 8 min by default).
    alert_check_minutes: int = Field(default=5, ge=1, le=60)
    webhook_max_attempts: int = Field(default=4, ge=1, le=10)
    webhook_retry_seconds: float = Field(default=30.0, gt=0)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    # Drift detection (app/monitoring/drift.py): the worker compares each production and canary
    # version's last drift_window_hours of logged predictions with its reference every
    # drift_interval_minutes; a window or reference with fewer than drift_min_samples rows is
    # "not enough data". prediction_log_inputs keeps each logged input's raw text too (off: only
    # its hash and sketch, for privacy).
    drift_interval_minutes: int = Field(default=60, ge=1, le=10080)
    drift_window_hours: float = Field(default=24.0, gt=0, le=24 * 400)
    drift_min_samples: int = Field(default=200, ge=10)
    prediction_log_inputs: bool = False

    # Usage analytics (app/usage): one event per prediction, ask, chat completion and embeddings
    # request, from pages and API alike; events older than usage_retention_days are deleted by
    # the worker's daily retention job (app/usage/jobs.py). No rollups: figures reach back as far.
    usage_retention_days: int = Field(default=90, ge=1, le=3650)
    # Hourly rollups of the prediction log (app/monitoring/rollups.py): the worker rolls up the
    # complete hours every monitoring_rollup_minutes (a divisor of 60 keeps the interval even),
    # and the last monitoring_rollup_reroll_hours again each time, for rows logged late.
    monitoring_rollup_minutes: int = Field(default=5, ge=1, le=60)
    monitoring_rollup_reroll_hours: int = Field(default=2, ge=0, le=168)
    # Retention (app/system/retention_jobs.py, hourly, one worker): finished job rows (never those
    # a training run, batch run, schedule or pending document still reads) older than
    # job_retention_days, prediction-log rows older than prediction_log_retention_days (only hours
    # already rolled up, so Monitoring keeps their figures) and temporary files (uploads being
    # received, half-written saves, the work of batch jobs finished or gone; app/system/temp_files.py)
    # older than temp_file_retention_hours are removed. 0 keeps them forever.
    job_retention_days: int = Field(default=90, ge=0, le=36500)
    prediction_log_retention_days: int = Field(default=180, ge=0, le=36500)
    temp_file_retention_hours: float = Field(default=24.0, ge=0, le=24 * 36500)

    # `strata migrate` (and so `strata run` and the Kubernetes migration Job) writes a full backup
    # to the file store under backups/ before it applies new migrations to a database in use.
    backup_before_migrate: bool = True
    # Backups include the built ONNX models (STRATA_MODELS_DIR, about 200 MB); off leaves them out,
    # as `strata models build` makes them again from their PyPI packages.
    backup_include_models: bool = True

    log_level: str = "INFO"

    @model_validator(mode="after")
    def _refuse_default_secret_in_production(self) -> "Settings":
        if self.env == "prod" and self.secret_key == DEFAULT_SECRET_KEY:
            raise ValueError(
                "STRATA_ENV=prod needs STRATA_SECRET_KEY set to a secret of your own; "
                "refusing to start with the default"
            )
        if self.env == "prod" and len(self.secret_key) < MIN_SECRET_KEY_LENGTH:
            raise ValueError(f"STRATA_SECRET_KEY must have at least {MIN_SECRET_KEY_LENGTH} characters")
        if self.env == "prod" and self.oidc_issuer and not self.oidc_issuer.startswith("https://"):
            raise ValueError("STRATA_OIDC_ISSUER must be an https:// URL in production")
        if 0 < self.prediction_log_retention_days * 24 < self.drift_window_hours:
            raise ValueError(
                "STRATA_PREDICTION_LOG_RETENTION_DAYS must keep at least STRATA_DRIFT_WINDOW_HOURS of the "
                "prediction log, which drift is computed over"
            )
        return self

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_issuer and self.oidc_client_id)

    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.resolve()

    @property
    def resolved_files_dir(self) -> Path:
        return (self.files_dir or self.resolved_data_dir).resolve()

    @property
    def resolved_models_dir(self) -> Path:
        return (self.models_dir or self.resolved_data_dir / "models").resolve()

    @property
    def resolved_model_import_dir(self) -> Path:
        return (self.model_import_dir or self.resolved_data_dir / "imports").resolve()

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.resolved_data_dir / 'strata.db'}"

    @property
    def effective_redis_url(self) -> str:
        if self.redis_url:
            return self.redis_url
        try:
            password = self.embedded_redis_password_file.read_text().strip()
        except OSError:  # not started yet: connecting fails with NOAUTH or refused
            password = ""
        auth = f":{password}@" if password else ""
        return f"redis://{auth}127.0.0.1:{self.embedded_redis_port}/0"

    @property
    def embedded_redis_password_file(self) -> Path:
        """The embedded Valkey's password (0600), written by `strata run` (app/core/runner/config.py)."""
        return self.resolved_data_dir / "run" / "valkey.password"

    @property
    def browser_port(self) -> int:
        """The port the frontend bundle is built for (see public_port)."""
        return self.public_port or self.port

    @property
    def ui_state_in_redis(self) -> bool:
        """Reflex keeps UI state in Redis only for scale-out (an external STRATA_REDIS_URL).
        Embedded, it stays in the one web process, so the UI keeps working, and can
        report it, while the embedded Valkey is down."""
        return bool(self.redis_url)

    @property
    def effective_web_workers(self) -> int:
        return max(1, self.web_workers) if self.ui_state_in_redis else 1

    @property
    def effective_chroma_url(self) -> str:
        return self.chroma_url or f"http://127.0.0.1:{self.embedded_chroma_port}"

    @property
    def metrics_are_public(self) -> bool:
        return self.env == "dev" if self.public_metrics is None else self.public_metrics

    @property
    def api_docs_are_public(self) -> bool:
        return self.env == "dev" if self.public_api_docs is None else self.public_api_docs

    @property
    def cors_origin_list(self) -> list[str]:
        return [origin.strip().rstrip("/") for origin in self.cors_origins.split(",") if origin.strip()]


@lru_cache
def get_settings() -> Settings:
    return Settings()
