"""The background daemon of a data directory: runs indexing jobs, keeps watched repositories in step
with edits, and answers the CLI and MCP servers over a local socket."""
