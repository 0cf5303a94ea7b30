"""codebase-mcp: index code repositories into PostgreSQL + pgvector and search them."""

__version__ = "0.1.0"


def package_version() -> str:
    """The installed distribution's version (what MCP clients and `daemon status` are told)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("codebase-mcp")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return __version__
