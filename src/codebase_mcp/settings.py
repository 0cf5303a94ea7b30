"""One typed settings object. Every field can be set with an environment variable
``CODEBASE_MCP_<FIELD>`` (for example ``CODEBASE_MCP_HOME``); ``DATABASE_URL`` is also read as is."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs
from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    return Path(platformdirs.user_data_dir("codebase-mcp", appauthor=False))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CODEBASE_MCP_", extra="ignore")

    home: Path = Field(
        default_factory=_default_home,
        description="Data directory: the embedded PostgreSQL cluster and logs live under it.",
    )
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CODEBASE_MCP_DATABASE_URL", "DATABASE_URL"),
        description="External PostgreSQL (with pgvector). Unset: an embedded server under `home`.",
    )
    embedding_provider: str = Field(
        default="local",
        max_length=64,
        description="Which embedding model implementation to use: local, http, fake, or a provider registered "
        "with codebase_mcp.embeddings.base.register (an unknown one is an error naming those known).",
    )
    embedding_model: str = Field(
        default="all-MiniLM-L6-v2",
        description="Model name. For the http provider, the model the server should use.",
    )
    embedding_url: str | None = Field(
        default=None,
        description="Base URL of an OpenAI-compatible or Ollama server (http provider), e.g. http://127.0.0.1:11434/v1",
    )
    embedding_api_key: str | None = Field(default=None, description="Bearer token for the http provider.")
    embedding_dimension: int | None = Field(
        default=None, description="Vector dimension of the http provider's model (checked on every batch)."
    )
    fake_embedding_cpu_ms: float = Field(
        default=0.0,
        ge=0,
        le=10_000,
        description="Tests and benchmarks only: CPU time the fake model burns per text in pure Python, "
        "holding the GIL as a slow model would.",
    )
    embedding_threads: int = Field(default=2, ge=1, le=64, description="CPU threads the local model may use.")
    embedding_int8: bool = Field(
        default=True,
        description="Run the local model's int8-compute graph (ships with codebase-mcp): faster on CPU at "
        "nearly the quality of fp32 on our evaluation (docs/benchmarks/quality-docstring.md). false runs fp32, "
        'which needs the fp32 extra (pip install "codebase-mcp[fp32]") and is derived once, cached under '
        "`home`. Each precision records its vectors under its own model name, so switching re-embeds.",
    )
    embedding_max_tokens: int = Field(
        default=64,
        ge=16,
        le=512,
        description="Word-pieces of each chunk the local model reads (the rest is cut). Each value is a "
        "model name of its own, so changing it re-embeds.",
    )
    embedding_batch_size: int = Field(
        default=32,
        ge=1,
        le=1024,
        description="The indexer's embedding step: it hands the model 4x this many chunks per call (at least "
        "64); the model runs them in inference batches of its own.",
    )
    max_file_bytes: int = Field(
        default=1_000_000, ge=1024, description="Files larger than this are skipped (reason: too_large)."
    )
    max_line_length: int = Field(
        default=1000,
        ge=80,
        description="A file whose average line is longer, or that has a line over 20x this, is treated "
        "as minified/generated and skipped.",
    )
    chunk_max_chars: int = Field(
        default=1500, ge=200, description="Chunk budget in characters (about 4 characters per token)."
    )
    prepare_process_min_files: int = Field(
        default=300,
        ge=0,
        description="A run that reads at least this many files reads, chunks and analyses them in a worker "
        "process, beside the process that stores them (0: never; docs/benchmarks/indexing.md).",
    )
    prepare_processes: int = Field(
        default=2,
        ge=0,
        description="Worker processes that read, chunk and analyse files for a run that reads at least "
        "prepare_process_min_files of them (0: none, the run's thread does it).",
    )
    store_batch_files: int = Field(
        default=200, ge=1, description="Files written per transaction while storing text and chunks."
    )
    store_batch_bytes: int = Field(
        default=2_000_000,
        ge=1,
        description="At most this many bytes of files per transaction (a file larger than this is a batch "
        "of its own): 200 translation catalogues make a batch of 16,000 chunks, whose COPY overran the "
        "statement timeout on a loaded machine (docs/benchmarks/indexing.md).",
    )
    max_concurrent_indexing_jobs: int = Field(
        default=2,
        ge=1,
        le=64,
        validation_alias=AliasChoices("CODEBASE_MCP_MAX_CONCURRENT_INDEXING_JOBS", "MAX_CONCURRENT_INDEXING_JOBS"),
        description="Jobs running at once across all workers sharing the database.",
    )
    indexing_job_timeout_seconds: int = Field(
        default=3600,
        ge=10,
        validation_alias=AliasChoices("CODEBASE_MCP_INDEXING_JOB_TIMEOUT_SECONDS", "INDEXING_JOB_TIMEOUT_SECONDS"),
        description="A job running longer than this fails with a timeout message.",
    )
    job_heartbeat_seconds: float = Field(default=2.0, gt=0, description="How often a worker proves it is alive.")
    job_heartbeat_timeout_seconds: float = Field(
        default=30.0, gt=0, description="A running job whose heartbeat is older than this is taken over."
    )
    job_poll_seconds: float = Field(default=0.5, gt=0, description="How often an idle worker looks for jobs.")
    job_retention_days: float = Field(default=7.0, gt=0, description="Finished jobs older than this are pruned.")
    run_worker: bool = Field(
        default=True, description="Whether `serve` runs jobs (through the daemon, or in-process without it)."
    )
    daemon: bool = Field(
        default=True,
        description="Jobs run in the data directory's background daemon, started on demand by `serve` and "
        "`index --background`, so they finish whatever happens to the process that started them; the daemon "
        "also keeps watched repositories in step with edits. False: `serve` runs jobs in its own process.",
    )
    daemon_idle_seconds: float = Field(
        default=600.0,
        ge=1,
        description="The daemon exits after this long with no job to run, no MCP server attached and no "
        "request or sync.",
    )
    daemon_start_timeout_seconds: float = Field(
        default=90.0,
        gt=0,
        description="How long a job start waits, in the background, for a daemon it started to answer; a job "
        "that no daemon started within this time fails with the reason. A first start creates the embedded "
        "cluster: tens of seconds on a slow disk.",
    )
    watch: bool = Field(
        default=True,
        description="Whether the daemon watches the repositories indexed on this machine and re-indexes "
        "what changes (per repository: `codebase-mcp watch REPO --off`).",
    )
    watch_debounce_ms: int = Field(
        default=400, ge=10, le=10_000, description="Longest a burst of file changes is collected before a sync."
    )
    watch_rescan_seconds: float = Field(
        default=30.0,
        ge=1,
        description="When the OS refuses file watches (e.g. Linux's max_user_watches), how often the "
        "repository is rescanned instead.",
    )
    watch_refresh_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How often the daemon reads the list of repositories to watch again, for those indexed "
        "outside it (a job or `index` that it runs or is told about is watched the moment it completes).",
    )
    max_concurrent_searches: int = Field(
        default=max(2, min(16, 2 * (os.cpu_count() or 1))),
        ge=1,
        le=256,
        description="Searches one server runs at once (CPU-bound: twice the cores); more wait in line, so quick calls "
        "such as status polls are not queued behind them.",
    )
    search_candidates: int = Field(
        default=50,
        ge=10,
        le=1000,
        description="Least candidates taken from each retriever before fusion (5x the limit when more).",
    )
    http_token: SecretStr | None = Field(
        default=None,
        description="Bearer token for `serve --transport http`. Required when bound beyond loopback; "
        "when set, every request must send `Authorization: Bearer <token>`.",
    )
    http_allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Extra Host header values (`name:port`, `name:*`) the HTTP transport accepts; "
        "loopback names are always accepted. Anything else is refused (DNS-rebinding protection).",
    )
    http_max_body_bytes: int = Field(
        default=1_000_000, ge=1024, le=100_000_000, description="Largest HTTP request body accepted."
    )
