"""Leases: one writer per session, across processes and hosts.

A lease names its holder (host, pid) and a random token, and expires unless renewed. A process
may take a session's lease when there is none, when it has expired, or when the holder was on
this host and its pid is gone (a kill -9 frees a session at once). Leases guard against a second
`resume` starting work; the optimistic head check on every commit is what makes interleaved
writes impossible even if a lease is wrongly taken over.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass

from agentctl.errors import SessionBusyError

DEFAULT_TTL_S = 30.0


@dataclass(frozen=True)
class Lease:
    host: str
    pid: int
    token: str
    expires_at: float  # seconds since the epoch

    @classmethod
    def mine(cls, token: str, ttl: float = DEFAULT_TTL_S) -> Lease:
        return cls(socket.gethostname(), os.getpid(), token, time.time() + ttl)

    def renewed(self, ttl: float = DEFAULT_TTL_S) -> Lease:
        return Lease(self.host, self.pid, self.token, time.time() + ttl)


def holder_is_gone(held: Lease, now: float | None = None) -> bool:
    """True when a held lease may be taken over."""
    if (now or time.time()) >= held.expires_at:
        return True
    if held.host != socket.gethostname():
        return False  # another machine: only expiry can tell
    try:
        os.kill(held.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, someone else's
    return False


def check_takeover(session_id: str, held: Lease | None, wanted: Lease) -> None:
    """Raise SessionBusyError naming the holder unless `wanted` may replace `held`."""
    if held is None or held.token == wanted.token or holder_is_gone(held):
        return
    left = max(0, round(held.expires_at - time.time()))
    raise SessionBusyError(
        f"session {session_id} is running in process {held.pid} on {held.host} "
        f"(lease expires in {left}s unless renewed)",
        hint="wait for it to finish, or stop that process",
    )
