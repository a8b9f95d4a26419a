"""Who may reach the chat: localhost by default; any other address only behind a login.

Kept free of Gradio so that a refusal is quick and the checks are cheap to test.
"""

from __future__ import annotations

import asyncio
import errno
import hmac
import ipaddress
import socket
import time

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


class LoginGuard:
    """Checks the chat's login and makes guessing slow: after a few wrong passwords each wrong one
    is refused only once a backoff has passed, one second after the next failure, then two,
    four... up to fifteen minutes. (Without it, 200 wrong passwords took 2.1 s, then the right
    one was accepted.) The right password is accepted at once, backoff or not: refusing it
    unchecked let anyone who could reach the page keep its owner out. For one user's chat the
    backoff is global, not per address: an attacker can change address, not the password
    being guessed."""

    FREE_ATTEMPTS = 3
    LONGEST_LOCK_S = 15 * 60

    def __init__(self, user: str, password: str, clock=time.monotonic, sleep=asyncio.sleep):
        self._user, self._password = user, password
        self._clock, self._sleep = clock, sleep
        self.failures = 0
        self.locked_until = 0.0

    async def check(self, user: str, password: str) -> bool:
        """Gradio's auth callback (a coroutine function, so Gradio awaits it)."""
        # Both compared every time (`&`, not `and`), in constant time: no timing tells which was wrong.
        if hmac.compare_digest(user.encode(), self._user.encode()) & hmac.compare_digest(
            password.encode(), self._password.encode()
        ):
            self.failures = 0
            self.locked_until = 0.0
            return True
        now = self._clock()
        wait = max(self.locked_until - now, 0.0)
        self.failures += 1
        if self.failures > self.FREE_ATTEMPTS:
            backoff = min(2.0 ** (self.failures - self.FREE_ATTEMPTS - 1), self.LONGEST_LOCK_S)
            self.locked_until = now + min(wait + backoff, self.LONGEST_LOCK_S)
        await self._sleep(wait)  # a guesser waits out the backoff before learning it was wrong
        return False


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
