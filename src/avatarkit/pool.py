"""A pool of open avatar sessions that survives faults: :class:`SessionPool`.

Opening a session costs a token call, a WebSocket and a handshake. A service
that animates many short utterances keeps a few sessions open and lends each
request an idle one::

    async with SessionPool(4, **session_kwargs) as pool:
        frames = await pool.request(pcm, timeout=30)        # lease, send, collect, release

        async with pool.session() as lease:                  # or drive a lease yourself
            await lease.send_audio(chunk1)
            await lease.send_audio(chunk2, end=True)
            async for frame in lease.frames():               # only this lease's frames
                ...
                if frame.end:
                    break

**Leases.** A :class:`SessionLease` gives one task exclusive use of one open
session until it is released; requests beyond the pool's size wait for a
session to come free (first come, first served). Send through the lease, not
through ``lease.session``: the lease keeps track of its requests so that their
frames reach it and no one else. ``lease.frames()`` buffers every frame of the
lease's requests from the moment the lease was granted, so frames that arrive
before you start iterating are not lost.

**Releasing mid-request.** Wait for the ``end`` frame of your request before
leaving ``async with pool.session()`` if you want it to play out. If the lease
still has a request in flight when it is released (audio sent without
``end=True``, or a request whose ``end`` frame has not arrived), the pool
sends ``interrupt()`` for it before the session goes back to the pool, and
any frames of the lease's unfinished requests that still arrive are dropped:
they never reach the next leaseholder, and the next ``send_audio()`` starts a
new request id. If the interrupt cannot be sent within two seconds the session
is closed and replaced instead.

**Faults.** A session that ends (server close, dropped connection, duration
limit, a service that stopped answering keepalive pings, even while the
session sat idle in the pool) is never handed out but replaced in the
background. The first attempt is immediate; failed
attempts are retried with exponential backoff and jitter (``backoff_initial``
doubling up to ``backoff_max``, each delay drawn from its upper half), and so
is a session that dies again soon after opening, so a service that accepts and
then drops connections is not hammered. A failure that a new session cannot
fix (:attr:`AvatarSDKError.retryable` false: bad credentials, unknown avatar,
credits exhausted, concurrency limit, ...) or ``max_retries`` failed attempts
in a row stop the pool: replacement stops, idle sessions are closed and
:meth:`SessionPool.acquire` raises that error (a copy of it) from then on,
waking the tasks already waiting. Leases already granted keep working.

A leaseholder whose session ends mid-request gets the reason from
``lease.frames()``, ``lease.request()`` or ``lease.send_audio()`` as an
:class:`AvatarSDKError` (``connectionClosed`` with the close code; retryable
for drops and 4002): retry on a new lease, or let
``pool.request(..., retries=1)`` do it.

**Callbacks.** The pool installs ``on_animation``, ``on_error`` and
``on_close`` on every session it opens. Yours, passed in ``session_kwargs``,
are still called (for every session, including attempts that failed to open),
after the pool's own bookkeeping.
"""

from __future__ import annotations

from ._pool.core import PoolStats, SessionPool
from ._pool.lease import PoolClosedError, SessionLease
from ._pool.opener import SessionFactory

# The implementation lives in private modules (avatarkit._pool: leases, the
# pool, how sessions are opened; avatarkit._retry: the retry policy); this
# module is the public home of the names.
__all__ = ["PoolClosedError", "PoolStats", "SessionFactory", "SessionLease", "SessionPool"]
