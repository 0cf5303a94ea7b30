"""What looks like a secret: by file name (never opened) and by content (checked before storing)."""

from __future__ import annotations

import fnmatch
import re
from pathlib import PurePosixPath

from codebase_mcp.core.languages import language_for

# Lower-cased file names (globs) that hold secrets or credentials.
SECRET_NAME_GLOBS: tuple[str, ...] = (
    ".env",
    ".env.*",
    "*.env",
    ".envrc",
    "id_rsa",
    "id_rsa.*",
    "id_dsa",
    "id_dsa.*",
    "id_ecdsa",
    "id_ecdsa.*",
    "id_ed25519",
    "id_ed25519.*",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "*.crt",
    "*.cer",
    "*.der",
    "*.csr",
    "*.p8",
    "*.ppk",
    "*.gpg",
    "*.pgp",
    "*.kdbx",
    "*.ovpn",
    "credentials",
    "credentials.*",
    "*.credentials",
    "*credentials*.json",
    ".netrc",
    "_netrc",
    ".npmrc",
    ".pypirc",
    ".pgpass",
    ".htpasswd",
    ".git-credentials",
    ".dockercfg",
    "kubeconfig",
    "*.kubeconfig",
    "*service-account*.json",
    "*service_account*.json",
    "application_default_credentials.json",
    "client_secret*.json",
    "secrets.yml",
    "secrets.yaml",
    "secrets.json",
    "*.secret",
    "*.secrets",
    "*.tfstate",
    "*.tfstate.*",
    "*.tfvars",
    "*.tfvars.json",
    "token.json",
    "*.token",
)
# Templates of secret files are meant to be shared (their content is still checked).
SECRET_NAME_ALLOW: tuple[str, ...] = (".env.example", ".env.sample", ".env.template", ".env.dist")
# Directories whose every file is a credential or a cloud configuration.
SECRET_DIRS: frozenset[str] = frozenset({".aws", ".ssh", ".gnupg", ".kube", ".docker", ".azure", "gcloud"})

# Each pattern with literals one of which any match contains: a pattern runs only on a text that holds
# one of them (``in`` is a memchr-speed scan; eleven regex searches of every file were a third of the
# indexer's read + chunk time). Hints of a case-insensitive pattern are matched in the lower-cased text.
_CONTENT_PATTERNS: tuple[tuple[str, re.Pattern[str], tuple[str, ...]], ...] = (
    (
        "private_key",
        re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"),
        ("PRIVATE KEY",),
    ),
    ("aws_access_key", re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b"), ("AKIA", "ASIA", "ABIA", "ACCA")),
    (
        "aws_secret_key",
        re.compile(r"(?i)aws_?secret_?access_?key\s*[:=]\s*['\"]?[A-Za-z0-9/+=]{40}"),
        ("secret",),
    ),
    (
        "github_token",
        re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{60,})\b"),
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    ),
    ("gitlab_token", re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}\b"), ("glpat-",)),
    ("slack_token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b"), ("xox",)),
    ("google_api_key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"), ("AIza",)),
    ("stripe_key", re.compile(r"\b[sr]k_live_[0-9A-Za-z]{20,}\b"), ("k_live_",)),
    ("openai_key", re.compile(r"\bsk-(?:proj-)?[A-Za-z0-9_-]{32,}\b"), ("sk-",)),
    ("anthropic_key", re.compile(r"\bsk-ant-[A-Za-z0-9_-]{32,}\b"), ("sk-ant-",)),
    ("gcp_service_account", re.compile(r"\"type\"\s*:\s*\"service_account\""), ("service_account",)),
)
_CASE_INSENSITIVE = frozenset({"aws_secret_key"})


# Source code is never a secret by its name alone (``Credentials.scala``, ``credentials.py``, ``token.go``
# are ordinary modules); its content is still checked for keys and tokens.
_DATA_LANGUAGES = frozenset({"text", "json", "yaml", "toml", "ini", "xml", "hcl"})


def secret_by_name(rel_path: str) -> bool:
    """True when the path's name or one of its folders marks it as a secret."""
    path = PurePosixPath(rel_path)
    name = path.name.lower()
    if any(part.lower() in SECRET_DIRS for part in path.parts[:-1]):
        return True
    if name in SECRET_NAME_ALLOW or language_for(rel_path) not in _DATA_LANGUAGES:
        return False
    return any(fnmatch.fnmatchcase(name, glob) for glob in SECRET_NAME_GLOBS)


def secret_in_text(text: str) -> str | None:
    """The kind of secret found in ``text``, or None."""
    lowered: str | None = None
    for kind, pattern, hints in _CONTENT_PATTERNS:
        haystack = text
        if kind in _CASE_INSENSITIVE:
            lowered = text.lower() if lowered is None else lowered
            haystack = lowered
        if any(hint in haystack for hint in hints) and pattern.search(text):
            return kind
    return None
