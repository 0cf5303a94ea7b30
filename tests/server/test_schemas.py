"""The published output schemas and the records tools return are written twice (a TypedDict for the
SDK's schema, a domain type for the data); they must name the same fields, or a new field silently
goes missing for clients (as coverage_percent once did)."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime

from codebase_mcp.domain import Job, JobPhase, JobStatus, Repository, RepositoryFreshness, RepositoryStats
from codebase_mcp.server.schemas import Freshness, JobRecord, RepositoryRecord


def test_job_record_schema_names_every_field_of_a_job() -> None:
    now = datetime.now(UTC)
    values: dict[str, object] = {f.name: None for f in dataclasses.fields(Job)}
    values.update(id=uuid.uuid4(), status=JobStatus.RUNNING, phase=JobPhase.CHUNKING, created_at=now, updated_at=now)
    job = Job(**values)  # type: ignore[arg-type]
    assert set(job.to_dict()) == set(JobRecord.__annotations__)


def test_repository_record_schema_names_every_field_of_a_repository() -> None:
    stats = RepositoryStats(Repository(1, "default", "r", "/r", None), files=1, chunks=2, embedded=1, skipped=0)
    assert set(stats.to_dict()) == set(RepositoryRecord.__annotations__)


def test_freshness_schema_names_every_field_of_a_repository_s_freshness() -> None:
    behind = RepositoryFreshness.read(3, "payments", datetime.now(UTC), 2.4, "running")
    assert set(behind.to_dict()) == set(Freshness.__annotations__)
    assert RepositoryFreshness.from_dict(behind.to_dict()) == dataclasses.replace(
        behind, synced_at=behind.synced_at.replace(microsecond=0) if behind.synced_at else None
    )
