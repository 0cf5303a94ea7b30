"""Content secrets: every pattern is still found behind its literal prefilter."""

from __future__ import annotations

import pytest

from codebase_mcp.core.secrets import _CONTENT_PATTERNS, secret_by_name, secret_in_text

EXAMPLES = {
    "private_key": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n",
    "aws_access_key": 'KEY = "AKIAIOSFODNN7EXAMPLE"\n',
    "aws_secret_key": "Aws_Secret_Access_Key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
    "github_token": 'TOKEN = "ghs_' + "a" * 36 + '"\n',
    "gitlab_token": "token: glpat-" + "x" * 20 + "\n",
    "slack_token": "SLACK = 'xoxb-1234567890-abcdef'\n",
    "google_api_key": "key=AIza" + "B" * 35 + "\n",
    "stripe_key": "stripe.api_key = 'rk_live_" + "9" * 24 + "'\n",
    "openai_key": "OPENAI_API_KEY=sk-proj-" + "q" * 40 + "\n",
    "anthropic_key": "ANTHROPIC_API_KEY=sk-ant-" + "z" * 40 + "\n",
    "gcp_service_account": '{"type": "service_account", "project_id": "x"}\n',
}


def _brute_force(text: str) -> str | None:
    """The detector without the prefilter: every pattern searched in full."""
    return next((kind for kind, pattern, _hints in _CONTENT_PATTERNS if pattern.search(text)), None)


def test_every_pattern_has_an_example() -> None:
    assert set(EXAMPLES) == {kind for kind, _p, _h in _CONTENT_PATTERNS}


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_each_kind_is_found_inside_ordinary_code(kind: str) -> None:
    text = "def load():\n    return 1\n\n" + EXAMPLES[kind] + "\nprint('done')\n"
    own = next(pattern for name, pattern, _hints in _CONTENT_PATTERNS if name == kind)
    assert own.search(text)
    found = secret_in_text(text)  # the first pattern that matches (an Anthropic key is also "sk-...")
    assert found is not None
    assert found == _brute_force(text)


@pytest.mark.parametrize(
    "text",
    [
        "def secret_santa(access_key):\n    return access_key\n",
        "AKIA is a prefix; ASIA is a continent; sk- and xox- are only prefixes\n",
        "# see PRIVATE KEY handling in docs\n",
        "service_account = load()\n",
        "aws_secret_access_key = os.environ['AWS_SECRET_ACCESS_KEY']\n",
        "",
    ],
)
def test_near_misses_are_not_secrets_and_agree_with_the_unfiltered_patterns(text: str) -> None:
    assert secret_in_text(text) is None
    assert _brute_force(text) is None


def test_prefilter_agrees_with_the_unfiltered_patterns_on_mixed_texts() -> None:
    texts = [a + "\n" + b for a in EXAMPLES.values() for b in EXAMPLES.values()]
    texts += [t.upper() for t in EXAMPLES.values()] + [t.lower() for t in EXAMPLES.values()]
    for text in texts:
        assert secret_in_text(text) == _brute_force(text), text


def test_secret_names() -> None:
    assert secret_by_name("deploy/.env")
    assert secret_by_name("home/.ssh/config")
    assert not secret_by_name("src/credentials.py")
    assert not secret_by_name(".env.example")
