"""The published output schemas and the records tools return are written twice (a TypedDict for the
SDK's schema, a domain type for the data); they must name the same fields, or a new field silently
goes missing for clients (as coverage_percent once did)."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime

from codebase_mcp.domain import Job, JobPhase, JobStatus, Repository, RepositoryStats
from codebase_mcp.server.schemas import JobRecord, RepositoryRecord


def test_job_record_schema_names_every_field_of_a_job() -> None:
    now = datetime.now(UTC)
    values: dict[str, object] = {f.name: None for f in dataclasses.fields(Job)}
    values.update(id=uuid.uuid4(), status=JobStatus.RUNNING, phase=JobPhase.CHUNKING, created_at=now, updated_at=now)
    job = Job(**values)  # type: ignore[arg-type]
    assert set(job.to_dict()) == set(JobRecord.__annotations__)


def test_repository_record_schema_names_every_field_of_a_repository() -> None:
    stats = RepositoryStats(Repository(1, "default", "r", "/r", None), files=1, chunks=2, embedded=1, skipped=0)
    assert set(stats.to_dict()) == set(RepositoryRecord.__annotations__)
