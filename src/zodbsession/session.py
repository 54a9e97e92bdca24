"""The Session adapter: ``ISession(request)[pkg_id]``."""
from zope.component import adapter
from zope.interface import Interface
from zope.interface import implementer

from zodbsession import clock
from zodbsession import expiry
from zodbsession.data import SessionData
from zodbsession.data import SessionPkgData
from zodbsession.interfaces import IFreshSessions
from zodbsession.interfaces import IPendingSessions
from zodbsession.interfaces import ISessionClientIdManager
from zodbsession.interfaces import ISession
from zodbsession.interfaces import ISessionLifecycle
from zodbsession import following
from zodbsession.context import commit_now
from zodbsession.context import context_of


@implementer(ISessionLifecycle)     # an ISession
@adapter(Interface)
class Session:
    """The sessions of the client that made ``request``.

    Nothing is created until something is stored. A client without a
    session in a container gets a new one that is pending: reading it
    (``get``, ``[]``, ``in``, ``len``, iteration) stores nothing and sends
    no cookie; the first value stored stores the session and, if the
    client has no id yet, issues one (and its cookie). The container
    returns the pending session for the client's id until the
    transaction ends, so ``container[client_id][pkg_id]`` is the object
    that ``session[pkg_id]`` returned.
    """

    def __new__(cls, request):
        # One Session per request, however it is reached (ISession(request),
        # Session(request), IClientId(request)): the request's context
        # holds it, with what the request resolved.
        context = context_of(request)
        session = context.session
        if type(session) is cls:
            return session
        session = super().__new__(cls)
        session._start(request, context)
        context.session = session
        return session

    @classmethod
    def for_context(cls, context):
        """The Session of the request whose host just made ``context``
        (the first: the host puts it where the application finds it)."""
        session = object.__new__(cls)
        session._start(context.request, context)
        context.session = session
        return session

    def __init__(self, request):
        pass        # __new__ set it up (or found it)

    # What a Session starts with.
    _client_id = None
    _renewed = False
    _following = False
    _found_manager = None
    # Whether the manager has the whole contract of ours
    # (ISessionClientIdManager), not only zope.session's.
    _extended = False
    # Whether the manager said the request has no id while the response
    # had no cookie pending (a new client's request asks more than once).
    _sent_none = False

    def _start(self, request, context):
        self.request = request
        self._context = context
        # container -> SessionData: this request's pending sessions, not
        # stored yet.
        self._pending = {}

    @property
    def _manager(self):
        manager = self._found_manager
        if manager is None:
            manager = self._found_manager = self._context.client_id_manager
            self._extended = ISessionClientIdManager.providedBy(manager)
        return manager

    @property
    def client_id(self):
        """The client's id, issuing one if the client has none."""
        if self._client_id is None:
            self._client_id = str(self._manager.getClientId(self.request))
            self._renewed = True
            self._follow_transactions()
            self._hold_pending()
        return self._client_id

    def _follow_transactions(self):
        # An id issued now goes out (its cookie) only if the transaction
        # commits: the Session follows the request's transactions, to
        # forget an id whose cookie an abort took back. (Where no host
        # holds the cookies back, they are sent whatever happens.)
        context = self._context
        if not self._following and context.hosted:
            self._following = True
            manager = context.transaction_manager_for()
            following.follow(manager, self)
            context.on_end(lambda: following.unfollow(manager, self))

    # -- as a follower of the request's transactions (zodbsession.following)

    def afterCompletion(self, txn):
        if txn.status != 'Committed':
            # Read again (the request's own cookie), or issued again.
            self._client_id = None
            self._renewed = False

    def release(self):
        """The request is over (``RequestContext.release``): the pending
        sessions it read and never stored go, with the callbacks that
        would have stored them (they refer back to this Session)."""
        pending, self._pending = self._pending, {}
        for data in pending.values():
            data.release()

    def _hold_pending(self):
        # The client has an id now: its pending sessions are found under
        # it in their containers.
        for container, data in self._pending.items():
            container.hold(self._client_id, data)

    def existing_client_id(self):
        """The client's id if it sent a valid one, else None."""
        if self._client_id is None:
            manager = self._manager
            if not self._extended:
                # A manager that can only issue ids.
                return self.client_id
            if self._sent_none and self._context.pending_if_any is None:
                # Asked already, and no cookie set since (by us or by
                # anyone calling the manager): still none.
                return None
            client_id = manager.getRequestId(self.request)
            if client_id is not None:
                self._client_id = str(client_id)
            else:
                self._sent_none = self._context.pending_if_any is None
        return self._client_id

    def sent_no_client_id(self):
        """Whether the client sent no valid id and none was issued yet:
        it has no stored session in any container. (False when the
        client id manager cannot say without issuing one: zope.session's
        own.)"""
        if self._client_id is not None:
            return False        # (most requests: it was read already)
        self._manager       # (found, and whether it is extended)
        return self._extended and self.existing_client_id() is None

    # -- ISession ---------------------------------------------------------

    def get(self, pkg_id, default=None):
        session_data = self._session_data(self._context.container(pkg_id))
        if session_data is None:
            return default
        return session_data.get(pkg_id, default)

    def __getitem__(self, pkg_id):
        container = self._context.container(pkg_id)
        if not IPendingSessions.providedBy(container):
            return self._stored_package(container, pkg_id)
        session_data = self._session_data(container)
        if session_data is None:
            session_data = self._new_pending(container)
        elif self._client_id is not None and not self._renewed:
            # A session in use: the manager's policy for a known id
            # applies (a finite cookieLifetime renews the cookie).
            self._renewed = True
            manager = self._found_manager or self._manager
            if self._extended:
                manager.renewRequestId(self.request, self._client_id)
            else:
                manager.getClientId(self.request)
        return session_data.package(pkg_id)

    def _session_data(self, container):
        """The client's session in ``container``: this request's pending
        one, else the stored one, else None."""
        pending = self._pending.get(container)
        if pending is not None:
            return pending
        client_id = self.existing_client_id()
        return None if client_id is None else container.get(client_id)

    def _new_pending(self, container):
        data = container.new_session_data()
        data.store_on_change(
            lambda data: self._store_pending(container, data))
        self._pending[container] = data
        if self._client_id is not None:
            container.hold(self._client_id, data)
        return data

    def _store_pending(self, container, data):
        """Store a pending session, before its first change."""
        # Stored now: issuing the client's id need not hold it first.
        del self._pending[container]
        try:
            issued = self._client_id is None
            client_id = self.client_id      # issues one (and its cookie)
            if not issued and self._outlived_by(client_id, container):
                # The client brought an id whose session has gone (it
                # expired): a new session gets a new id.
                client_id = self._issue_new_id()
                issued = True
            if issued and IFreshSessions.providedBy(container):
                # No older session can be filed under an id just issued.
                container.store_new(client_id, data)
            else:
                container[client_id] = data
        except BaseException:
            self._pending[container] = data
            raise

    def _stored_package(self, container, pkg_id):
        # A container that cannot hold a session unstored: the
        # zope.session way, everything is stored at once.
        client_id = self.client_id
        session_data = container.get(client_id)
        if session_data is None:
            if self._outlived_by(client_id, container):
                client_id = self._issue_new_id()
            container[client_id] = SessionData()
            # Read back: a container may store its own kind of data.
            session_data = container[client_id]
        try:
            return session_data[pkg_id]
        except KeyError:
            session_data[pkg_id] = SessionPkgData()
            return session_data[pkg_id]

    def __iter__(self):
        raise NotImplementedError(
            'a Session cannot list its packages: each may live in another'
            ' container; ask for one with session[pkg_id]')

    def __contains__(self, pkg_id):
        raise TypeError(
            "'in' is not supported on a Session; use"
            ' session.get(pkg_id) is not None')

    # -- ISessionLifecycle --------------------------------------------------

    def exists(self):
        """Whether the client has session data in any container."""
        client_id = self.existing_client_id()
        return client_id is not None and any(
            client_id in container
            for container in self._context.all_containers())

    def _outlived_by(self, client_id, container):
        """Whether the client brought ``client_id``, issued longer ago than
        ``container`` keeps a session, and has no session anywhere: its
        session expired, and the id must not start another."""
        manager = self._manager
        if not ISessionClientIdManager.providedBy(manager):
            return False
        # Cheapest first: a client that brought no id (most new sessions)
        # costs one cookie lookup.
        if manager.getIncomingId(self.request) != client_id:
            return False
        age = expiry.max_age(container.timeout, container.resolution)
        issued = manager.issuedAt(client_id)
        return (age is not None and issued is not None
                and issued + age < clock.now()
                and not self.exists())

    def _remove_data(self, client_id):
        moved = []
        for container in self._context.all_containers():
            if client_id in container:      # stored (not pending)
                data = container[client_id]
                del container[client_id]
                moved.append((container, data))
        return moved

    def _issue_new_id(self):
        manager = self._manager
        if not ISessionClientIdManager.providedBy(manager):
            raise TypeError(
                f'{type(manager).__name__} can only hand out the id a'
                ' request has: invalidate(), regenerate() and an expired'
                ' id replaced need a client id manager that provides'
                ' zodbsession.interfaces.ISessionClientIdManager (as'
                ' CookieClientIdManager does)')
        new_id = str(manager.generateUniqueId())
        manager.setRequestId(self.request, new_id)
        self._client_id = new_id
        self._follow_transactions()
        self._hold_pending()
        return new_id

    def _drop_pending(self):
        # What this request was about to store goes with the session.
        for data in self._pending.values():
            data.store_on_change(None)
        self._pending.clear()

    def invalidate(self):
        client_id = self.existing_client_id()
        if client_id is not None:
            self._remove_data(client_id)
        self._drop_pending()
        self._issue_new_id()

    def regenerate(self):
        client_id = self.existing_client_id()
        moved = self._remove_data(client_id) if client_id else []
        new_id = self._issue_new_id()
        for container, data in moved:
            container[new_id] = data

    def delete(self):
        client_id = self.existing_client_id()
        if client_id is not None:
            self._remove_data(client_id)
        self._drop_pending()
        if ISessionClientIdManager.providedBy(self._manager):
            self._manager.deleteRequestId(self.request)
        self._client_id = None

    def persist(self):
        # The request's own manager (pyramid_tm may run an explicit one),
        # not the thread's.
        commit_now(self._context.transaction_manager_for())


def session_of(request):
    """The ISession adapter: the request's one Session.

    Every ``ISession(request)`` (and ``Session(request)``) of a request is
    the same Session, so the client id is read and verified once per
    request, and the sessions it has not stored yet are the same for
    every caller.
    """
    session = context_of(request).session
    return session if type(session) is Session else Session(request)


def get_session(request, create=False):
    """The request's session; None if the client has none and not create.

    With ``create=False`` nothing is created: no client id, no data.
    """
    session = ISession(request)
    if create:
        session.client_id
        return session
    return session if session.exists() else None


def expire_session(request):
    """End the client's session: its data goes and its cookie expires."""
    ISession(request).delete()
