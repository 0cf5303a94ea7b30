"""Which files are searched by keyword only, never embedded: translation catalogues and data files, which
people look up by a string they know, not by meaning, and which are a large share of many repositories'
chunks (django: 6,208 of 49,301 are `.po` catalogues). Embedding them cost minutes and gained nothing.

A repository can set its own list in ``.codebase-mcp/config.json`` at its root: ``{"keyword_only":
["*.json", "fixtures/**"]}`` (gitignore patterns, replacing the default list; ``[]`` embeds every file).
The rule applies to a file when it is (re)indexed; ``index --force`` applies a new list to every file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pathspec

from codebase_mcp.errors import InvalidInput

CONFIG = Path(".codebase-mcp") / "config.json"

DEFAULT_KEYWORD_ONLY = (
    # translation catalogues
    "*.po",
    "*.pot",
    "*.xlf",
    "*.xliff",
    "*.arb",
    "*.resx",
    # data
    "*.json",
    "*.jsonl",
    "*.ndjson",
    "*.geojson",
    "*.csv",
    "*.tsv",
    "*.svg",
)


@dataclass(frozen=True)
class EmbedPolicy:
    patterns: tuple[str, ...]
    spec: pathspec.GitIgnoreSpec = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "spec", pathspec.GitIgnoreSpec.from_lines(self.patterns))

    def keyword_only(self, rel_path: str) -> bool:
        return bool(self.spec.match_file(rel_path))

    @classmethod
    def of(cls, root: Path) -> EmbedPolicy:
        """The repository's own list, when its config file sets one; the default list otherwise."""
        path = root / CONFIG
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(DEFAULT_KEYWORD_ONLY)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidInput(f"Cannot read {path}: {exc}. Fix or remove it, then index again.") from None
        patterns = config.get("keyword_only", DEFAULT_KEYWORD_ONLY) if isinstance(config, dict) else None
        if not isinstance(patterns, list | tuple) or not all(isinstance(p, str) for p in patterns):
            raise InvalidInput(
                f'{path}: "keyword_only" must be a list of gitignore patterns, e.g. ["*.json", "locale/**"] '
                "([] embeds every file)."
            )
        return cls(tuple(patterns))
