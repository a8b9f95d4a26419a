"""Who may reach the chat: localhost by default; any other address only behind a login.

Kept free of Gradio so that a refusal is quick and the checks are cheap to test.
"""

from __future__ import annotations

import errno
import ipaddress
import socket

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


class PortBusy(RuntimeError):
    """The port is taken: Gradio's own message names its settings, not `rag serve --port`."""


def check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        # As the server will: a port left in TIME_WAIT by a stopped server is free to take.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise PortBusy(f"port {port} on {host} is in use (another `rag serve`?): "
                           f"stop it, or pick another port with --port {port + 1}") from None
