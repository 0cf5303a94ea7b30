"""``python -m codebase_mcp``: the command line (how the daemon is started, whatever the install)."""

from codebase_mcp.cli.main import main

main()
