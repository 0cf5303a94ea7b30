"""codebase-mcp: index code repositories into PostgreSQL + pgvector and search them."""

__version__ = "0.1.0"
