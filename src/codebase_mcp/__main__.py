"""``python -m codebase_mcp``: the command line (how the daemon is started, whatever the install)."""

from codebase_mcp.cli.main import main

if __name__ == "__main__":  # a spawned worker process (indexing/prepare.py) imports this module again
    main()
