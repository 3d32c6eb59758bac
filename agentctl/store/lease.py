"""Leases: one writer per session, across processes and hosts.

A lease names its holder (host, pid) and a random token, and expires unless renewed. A process
may take a session's lease when there is none, when it has expired, or when the holder was on
this host and its pid is gone (a kill -9 frees a session at once). Leases guard against a second
`resume` starting work; the optimistic head check on every commit is what makes interleaved
writes impossible even if a lease is wrongly taken over.
"""

from __future__ import annotations

import getpass
import os
import socket
import time
from dataclasses import dataclass

from agentctl.errors import SessionBusyError

DEFAULT_TTL_S = 30.0


def lease_ttl() -> float:
    """How long a lease lasts unless renewed (the heartbeat renews it every third of that).
    AGENTCTL_LEASE_TTL changes it: shorter for tests, longer for a slow network store."""
    try:
        return max(1.0, float(os.environ.get("AGENTCTL_LEASE_TTL", DEFAULT_TTL_S)))
    except ValueError:
        return DEFAULT_TTL_S


def host_name() -> str:
    """This machine's name in leases. AGENTCTL_HOSTNAME overrides it where containers share
    one hostname (a lease's pid is checked only on the host that wrote it)."""
    return os.environ.get("AGENTCTL_HOSTNAME") or socket.gethostname()


def user_name() -> str:
    try:
        return os.environ.get("AGENTCTL_USER") or getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


@dataclass(frozen=True)
class Lease:
    host: str
    pid: int
    token: str
    expires_at: float  # seconds since the epoch (a network store judges by its own clock)
    user: str = ""

    @classmethod
    def mine(cls, token: str, ttl: float | None = None) -> Lease:
        ttl = lease_ttl() if ttl is None else ttl
        return cls(host_name(), os.getpid(), token, time.time() + ttl, user_name())

    def renewed(self, ttl: float | None = None) -> Lease:
        ttl = lease_ttl() if ttl is None else ttl
        return Lease(self.host, self.pid, self.token, time.time() + ttl, self.user)

    def holder(self) -> str:
        who = f"{self.user}@{self.host}" if self.user else self.host
        return f"process {self.pid} on {who}"


# A move's copy in the store it goes to is held by a lease with this token prefix until the
# source is marked as moved (transfer.move_session): no expiry and no dead pid frees it, so a
# move killed midway never leaves a second copy that runs. Only the move itself (the same
# token, made from the session and the store it leaves) takes it or gives it up.
ARRIVING = "arriving-"
ARRIVAL_TTL_S = 100 * 365 * 86400.0


def arriving_lease(token: str) -> Lease:
    return Lease.mine(ARRIVING + token, ttl=ARRIVAL_TTL_S)


def arriving_error(session_id: str) -> SessionBusyError:
    from agentctl.errors import ArrivingError

    return ArrivingError(
        f"session {session_id} is arriving from another store: the move that brings it "
        "has not finished, so it does not run here yet",
        hint=f"finish the move: run `agentctl move {session_id} --to URL` against the store "
        f"it came from (URL: this store), or delete this copy: agentctl rm {session_id}",
    )


MAX_FIELD = 255  # a host, token or user name longer than this is not one agentctl wrote


def lease_from(
    host: object, pid: object, token: object, expires_at: object, user: object = ""
) -> Lease | None:
    """A lease read back from a store, validated: None when a field is not what agentctl
    writes (a damaged row or file). A lease is advisory (the head check on every commit is the
    guard), so a damaged one holds nothing, and reading one never raises."""
    texts = (host, token, user)
    if not all(isinstance(t, str) and len(t) <= MAX_FIELD for t in texts):
        return None
    # pid 0 is no process (kill(0, 0) asks about this process's group: always "alive")
    if not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid < 2**31:
        return None
    if not isinstance(expires_at, int | float) or isinstance(expires_at, bool):
        return None
    # Compared, not converted first: an integer of 400 digits (a JSON file may hold one) does
    # not convert to a float; NaN compares false; before the epoch is no time agentctl writes.
    if not 0 <= expires_at <= MAX_EXPIRES or not token:
        return None
    return Lease(str(host), pid, str(token), float(expires_at), str(user))


MAX_EXPIRES = 253402300799.0  # 9999-12-31T23:59:59Z: an arriving lease's 100 years fit


def holder_is_gone(held: Lease, now: float | None = None) -> bool:
    """True when a held lease may be taken over."""
    if held.token.startswith(ARRIVING):
        return False
    if (now or time.time()) >= held.expires_at:
        return True
    if held.host != host_name():
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
    if held is None or held.token == wanted.token:
        return
    if held.token.startswith(ARRIVING):
        raise arriving_error(session_id)
    if holder_is_gone(held):
        return
    left = max(0, round(held.expires_at - time.time()))
    raise SessionBusyError(
        f"session {session_id} is running in {held.holder()} "
        f"(lease expires in {left}s unless renewed)",
        hint="wait for it to finish, or stop that process",
    )
