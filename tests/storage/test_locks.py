"""The advisory-lock keys: each names one purpose, and none ever changes value (a process of an older
version may hold it while a newer one runs)."""

from __future__ import annotations

from codebase_mcp.storage import locks


def test_lock_keys_keep_their_values_and_differ() -> None:
    keys = {name: value for name, value in vars(locks).items() if name.isupper()}
    assert keys == {
        "MIGRATIONS": 0x636F6465,
        "JOB_CLAIM": 7355608,
        "VECTOR_INDEX": 0x686E7377,
        "REPOSITORY": 0x72657078,
    }
    assert len(set(keys.values())) == len(keys)
