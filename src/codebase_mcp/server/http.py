"""Streamable HTTP transport: loopback by default, a bearer token required beyond it, Host and Origin
headers checked (DNS-rebinding protection) and request bodies capped. Token checking goes through the
MCP SDK's own bearer-auth middleware, with a verifier that compares against one shared secret."""

from __future__ import annotations

import hmac
import ipaddress

from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.transport_security import TransportSecuritySettings

from codebase_mcp.errors import InvalidInput
from codebase_mcp.settings import Settings

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


class SharedTokenVerifier:
    """Accepts exactly one token, compared in constant time."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()

    async def verify_token(self, token: str) -> AccessToken | None:
        if hmac.compare_digest(token.encode(), self._token):
            return AccessToken(token="***", client_id="codebase-mcp-client", scopes=[])
        return None


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_http_settings(settings: Settings, host: str) -> None:
    """Refuse an unsafe configuration before binding anything."""
    token = settings.http_token.get_secret_value() if settings.http_token else ""
    if not is_loopback(host) and not token:
        raise InvalidInput(
            f"Binding the HTTP transport to {host} exposes your code beyond this machine: set "
            "CODEBASE_MCP_HTTP_TOKEN to a long random secret (clients then send `Authorization: Bearer "
            "<token>`), or bind to 127.0.0.1."
        )
    if token and len(token) < 16:
        raise InvalidInput("CODEBASE_MCP_HTTP_TOKEN is too short: use at least 16 random characters.")


def auth_settings(settings: Settings, host: str, port: int) -> tuple[AuthSettings, SharedTokenVerifier] | None:
    if settings.http_token is None or not settings.http_token.get_secret_value():
        return None
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
    auth = AuthSettings(issuer_url=url, resource_server_url=f"{url}/mcp")  # type: ignore[arg-type]
    return auth, SharedTokenVerifier(settings.http_token.get_secret_value())


def transport_security(settings: Settings, host: str) -> TransportSecuritySettings:
    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*", *settings.http_allowed_hosts]
    if not is_loopback(host) and host not in {"0.0.0.0", "::"}:
        hosts.append(f"{host}:*")
    origins = [f"http://{h}" for h in hosts] + [f"https://{h}" for h in hosts]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)
