"""Time slices: the expiry index shared by the containers.

Every session sits in the slice that covers its last-access time; a slice
is identified by the (exclusive) end of the time range it covers. Once a
slice's end is older than ``timeout + resolution`` every session in it has
expired, so sweeping drops whole slices without reading their sessions.
"""
from zodbsession.interfaces import ISessionDataContainer
from zodbsession.interfaces import ISessionDataCreated
from zodbsession.validated import Setting


class ExpirySettings:
    """What every container says about how long a session lives:
    ``timeout``, ``resolution`` and ``lifetime``, validated on assignment
    (each container's constructor assigns all three).
    """

    __parent__ = __name__ = None

    timeout = Setting(ISessionDataContainer['timeout'])
    resolution = Setting(ISessionDataContainer['resolution'])
    lifetime = Setting(ISessionDataContainer['lifetime'])

    # zope.session's switch: True leaves all sweeping to sweep().
    disable_implicit_sweeps = False
    # With implicit sweeps disabled: when sweep() last ran (see swept()).
    _swept_at = 0

    def __repr__(self):
        return (f'<{type(self).__name__} timeout={self.timeout}'
                f' resolution={self.resolution}>')


# With no timeout nothing expires, but sessions still move between slices
# as they are used, so that setting a timeout later works; long slices
# keep that movement (and the number of slices to look in) small.
NO_TIMEOUT_SLICE_LENGTH = 30 * 24 * 3600

# Upper bound on the number of live slices, hence on lookups per miss.
SLICES_PER_TIMEOUT = 8


def slice_length(timeout, resolution):
    """Seconds covered by one slice."""
    if not timeout:
        return NO_TIMEOUT_SLICE_LENGTH
    return max(resolution, -(-timeout // SLICES_PER_TIMEOUT), 1)


def slice_end(timestamp, length):
    """The end of the slice that covers ``timestamp``."""
    timestamp = int(timestamp)
    return timestamp - timestamp % length + length


def max_age(timeout, resolution):
    """Seconds after its recorded last access when a session expires.

    The recorded time lags the real one by up to ``resolution``, so a
    session times out at most ``resolution`` late, never early.
    """
    return timeout + resolution if timeout else None


def is_expired(last_access, now, timeout, resolution):
    age = max_age(timeout, resolution)
    return age is not None and last_access + age < now


def outlived(created, now, lifetime):
    """Whether a session created at ``created`` passed its lifetime."""
    return bool(lifetime) and bool(created) and created + lifetime < now


def oldest_live_end(now, timeout, resolution):
    """Slices ending at or before this are wholly expired (None: never)."""
    return int(now) - timeout - resolution if timeout else None


def needs_touch(last_access, now, container):
    """Whether the last-access time is stale enough to be written. With
    no timeout nothing expires, and it never is (as in zope.session)."""
    return bool(container.timeout) and (
        now - last_access > container.resolution)


def swept(container, now):
    """``container`` is being swept at ``now``.

    With implicit sweeps disabled, zope.session returns expired data until
    sweep() removes it; sweep() here drops whole slices, so it remembers
    when it ran instead, and what had expired by then is never returned
    again. (Only then: the container's record is not rewritten by every
    sweep.)
    """
    if container.disable_implicit_sweeps:
        container._swept_at = int(now)


def idle_clock(container, now):
    """The time idle expiry is judged at: now, or, with implicit sweeps
    disabled, when sweep() last ran (what expired since stays)."""
    return container._swept_at if container.disable_implicit_sweeps else now


def session_ended(data, now, container):
    """Whether ``data`` (an ISessionData) is past ``container``'s idle
    timeout or absolute lifetime."""
    # (is_expired of idle_clock, written out: this runs for every session
    # a request finds.)
    timeout = container.timeout
    if timeout and data.getLastAccessTime() + timeout + (
            container.resolution) < (container._swept_at
                                     if container.disable_implicit_sweeps
                                     else now):
        return True
    lifetime = container.lifetime
    if not lifetime:
        return False
    # ISessionData has no creation time; ours (getCreated) does.
    created = (data.getCreated() if ISessionDataCreated.providedBy(data)
               else 0)
    return outlived(created, now, lifetime)


def resolution_for(timeout, default=600):
    """A resolution that suits ``timeout``: the default, or a tenth of a
    short timeout, so that a session used within its timeout lives."""
    return min(default, max(1, timeout // 10)) if timeout else default
