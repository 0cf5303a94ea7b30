"""Every PostgreSQL advisory-lock key this program takes, named in one place.

A key's value must never change: a process of an older version may hold it at the same time, and two
values for one purpose would let both run at once. A key here must differ from every other one here
(``tests/storage/test_locks.py``)."""

from __future__ import annotations

from typing import Final

MIGRATIONS: Final = 0x636F6465  # "code"
"""``pg_advisory_lock(MIGRATIONS)``: one process applies the pending schema migrations at a time."""

JOB_CLAIM: Final = 7355608
"""``pg_advisory_xact_lock(JOB_CLAIM)``: job claims run one at a time, so the running-jobs limit holds."""

VECTOR_INDEX: Final = 0x686E7377  # "hnsw"
"""``pg_advisory_xact_lock(VECTOR_INDEX)``: one transaction at a time creates a model's vector index."""

REPOSITORY: Final = 0x72657078  # "repx"
"""A space of two-key locks, ``(REPOSITORY, repository id)``: one index run per repository at a time."""
