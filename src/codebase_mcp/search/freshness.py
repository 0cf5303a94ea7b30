"""Freshness in every answer: which searched repositories a result reports on, and the one line that says
the index may be behind. The facts are read with the repository list at the start of a search
(``storage.repo_store.search_scope``), before any content, so a result is never newer than what it says of
itself: a change the watcher saw by then is either in the results or reported as pending."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from codebase_mcp.domain import RepositoryFreshness


def reported(
    scope: Sequence[RepositoryFreshness], hit_repository_ids: Iterable[int], *, asked: bool
) -> tuple[RepositoryFreshness, ...]:
    """What a result carries, kept short (every byte is read by the agent): the repositories that may be
    behind (whether or not they produced a hit: a new name in a changed file finds nothing yet), those
    that produced a hit (when each was last synced), and the one asked for by name (``asked``)."""
    hits = set(hit_repository_ids)
    return tuple(f for f in scope if f.pending or f.repository_id in hits or asked)


def stale_note(freshness: Iterable[RepositoryFreshness]) -> str | None:
    """One line when some searched repository may be behind its files; None when all are fresh."""
    behind = [f"{f.repository} ({f.why})" for f in freshness if f.pending]
    if not behind:
        return None
    more = f" and {len(behind) - 5} more" if len(behind) > 5 else ""
    return f"note: changes not yet indexed in {', '.join(behind[:5])}{more}: results may be stale."
