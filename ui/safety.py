"""Who may reach the chat: localhost by default; any other address only behind a login.

Kept free of Gradio so that a refusal is quick and the checks are cheap to test.
"""

from __future__ import annotations

import ipaddress

LOCAL_NAMES = {"localhost", "localhost.localdomain"}


class UnsafeServe(RuntimeError):
    """The server would be reachable from other machines without a login."""


def parse_auth(value: str | None) -> tuple[str, str] | None:
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not (sep and user and password):
        raise UnsafeServe("RAG_UI_AUTH must look like user:password, with both parts non-empty.")
    return user, password


def is_local(host: str) -> bool:
    if host in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, auth: tuple[str, str] | None) -> None:
    if not is_local(host) and auth is None:
        raise UnsafeServe(
            f"refusing to serve on {host} without a login: anyone who can reach it could read and add "
            "articles. Set RAG_UI_AUTH=user:password, or serve on 127.0.0.1 (the default)."
        )
