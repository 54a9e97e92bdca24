"""The request context: what one request resolves, once.

A request goes straight down: its cookies, the client id, the container
of each package, the session data, the commit, the Set-Cookie headers.
One ``RequestContext`` per request (per attempt, when a conflict runs the
request again) holds what that walk resolves, so that each step happens
once and in one place:

- the registry that serves the request (the host's: the site's
  snapshot), the client id manager, and each package's container, bound
  to the request;
- the request's ``Session``, which reads and verifies the client id once
  and issues one at most once;
- the request's cookies (``IRequestCookies``) and the response's pending
  cookies and headers (``PendingResponse``), which follow the request's
  transactions, so that what an aborted transaction set is never sent;
- the views of the request-bound containers (the cookie container's) and
  the one data manager they join the request's transaction with: on their
  first write, so that a request that only reads runs no two-phase commit;
- the hosting's connection site, which opens a database connection on
  first need only.

Every host (the WSGI middleware, the Pyramid tween, the ASGI, Flask and
Beaker hosts) makes one with ``RequestContext(...)`` and puts it where
``context_of(request)`` finds it. A request that no host prepared (a
zope.publisher request, a WebOb request in a test) gets one on first use,
served by the registry its ``IComponentLookup`` adapter gives, else by
the current site manager.
"""
import weakref

import transaction
import zope.component
from zope.interface.interfaces import ComponentLookupError
from zope.interface.interfaces import IComponentLookup

from zodbsession import following
from zodbsession.environkeys import CONTEXT_KEY
from zodbsession.interfaces import IClientIdManager
from zodbsession.interfaces import IRequestBoundContainer
from zodbsession.interfaces import IRequestCookies
from zodbsession.interfaces import ISessionDataContainer
from zodbsession.lookup import container_binding_in
from zodbsession.lookup import container_in
from zodbsession.lookup import query_in
from zodbsession.lookup import utility_in
from zodbsession.pending import PendingResponse

_UNKNOWN = object()


class RequestContext:
    """What one request resolves, each once.

    ``request``: what ``ISession`` adapts (its cookies are read through
    ``cookies``, the request's IRequestCookies, found on first use when
    not given). ``registry``: a callable returning the registry that
    serves the request (None: the request's IComponentLookup adapter,
    else the current site manager). ``transaction_manager``: the manager
    of the request's transaction, when the host runs one. ``site``: the
    host's connection site (``zodbsession.hosting.connection``), for the
    containers whose data is in the database. ``pending``: the response's
    pending cookies and headers (a new PendingResponse when not given).
    ``hosted``: the host applies ``pending`` to the response itself.
    """

    # What a context starts with; a request sets only what it uses.
    _registry = None
    # The response's pending cookies and headers if the request set any
    # (``pending`` makes them on first use).
    pending_if_any = None
    session = None              # the request's Session, once made
    _client_id_manager = _UNKNOWN
    _containers = None          # pkg_id -> container, bound
    _views = None               # key -> a request-bound container's view
    _data_managers = None       # transaction manager -> RequestDataManager
    # (Cookie header, {name: value as text}): the header read once.
    parsed_cookies = None
    _at_end = None

    def __init__(self, request, registry=None, transaction_manager=None,
                 site=None, cookies=None, pending=None, hosted=False):
        self.request = request
        self._load_registry = registry
        self.transaction_manager = transaction_manager
        self.site = site
        self._cookies = cookies
        if pending is not None:
            self.pending_if_any = pending
        self.hosted = hosted
        # Whether someone puts ``pending`` on the response.
        self.pending_applied = hosted

    @property
    def pending(self):
        """The response's pending cookies and headers."""
        pending = self.pending_if_any
        if pending is None:
            pending = self.pending_if_any = PendingResponse()
        return pending

    # -- what serves the request ------------------------------------------

    @property
    def registry(self):
        registry = self._registry
        if registry is None:
            load = self._load_registry
            registry = self._registry = (
                load() if load is not None else _registry_of(self.request))
        return registry

    @property
    def host_registry(self):
        """The registry the host gave, or None (the IComponentLookup
        adapter of requests that a host prepared)."""
        return None if self._load_registry is None else self.registry

    @property
    def cookies(self):
        cookies = self._cookies
        if cookies is None:
            cookies = self._cookies = cookies_of(self.request)
        return cookies

    def query_client_id_manager(self):
        """The IClientIdManager that serves the request, or None."""
        manager = self._client_id_manager
        if manager is _UNKNOWN:
            manager = self._client_id_manager = query_in(
                self._registry or self.registry, IClientIdManager)
        return manager

    @property
    def client_id_manager(self):
        """The IClientIdManager that serves the request
        (ComponentLookupError if there is none)."""
        manager = self._client_id_manager
        if manager is _UNKNOWN:
            manager = self._client_id_manager = query_in(
                self._registry or self.registry, IClientIdManager)
        if manager is None:
            raise ComponentLookupError(IClientIdManager, '')
        return manager

    def container(self, pkg_id):
        """The container of ``pkg_id``'s data, bound to the request."""
        containers = self._containers
        if containers is None:
            containers = self._containers = {}
        container = containers.get(pkg_id)
        if container is None:
            container, binds = container_binding_in(
                self._registry or self.registry, pkg_id)
            if binds:
                container = container.bind(self.request)
            containers[pkg_id] = container
        return container

    def all_containers(self):
        """Every registered container, each once, bound to the request."""
        seen = {}
        for _name, container in self.registry.getUtilitiesFor(
                ISessionDataContainer):
            seen[id(container)] = container
        return [self.bound(container) for container in seen.values()]

    def bound(self, container):
        if IRequestBoundContainer.providedBy(container):
            return container.bind(self.request)
        return container

    def view(self, container, make, key=None):
        """The request's view of a request-bound ``container``, made by
        ``make(container, context)`` on first use; one per ``key``
        (default: per container object)."""
        if key is None:
            key = id(container)
        views = self._views
        if views is None:
            views = self._views = {}
        view = views.get(key)
        if view is None:
            view = views[key] = make(container, self)
        return view

    def transaction_manager_for(self, container=None):
        """The manager of the request's transaction: the host's, else
        that of the connection which loaded ``container``, else the
        thread's."""
        manager = self.transaction_manager
        if manager is not None:
            return manager
        jar = getattr(container, '_p_jar', None)
        return jar.transaction_manager if jar is not None else (
            transaction.manager)

    # -- the request's transaction ----------------------------------------

    def join(self, participant, transaction_manager):
        """Take part in ``transaction_manager``'s current transaction
        through the request's one data manager for that manager
        (``participant``: a request-bound container's view, with a data
        manager's ``abort``, ``tpc_vote``, ``tpc_finish`` and
        ``tpc_abort``)."""
        # One per manager: a context that no host prepared may reach
        # containers loaded by connections of other managers.
        managers = self._data_managers
        if managers is None:
            managers = self._data_managers = {}
        data_manager = managers.get(transaction_manager)
        if data_manager is None:
            data_manager = managers[transaction_manager] = RequestDataManager(
                transaction_manager)
        data_manager.enlist(participant)

    def takes_part(self, transaction_manager):
        """Whether the request's data manager takes part in
        ``transaction_manager``'s current transaction (then one is under
        way: it leaves when the transaction ends)."""
        managers = self._data_managers
        data_manager = None if managers is None else managers.get(
            transaction_manager)
        return data_manager is not None and data_manager.joined

    def on_end(self, callback):
        """Call ``callback()`` when the request ends (``end``)."""
        if self._at_end is None:
            self._at_end = []
        self._at_end.append(callback)

    def end(self):
        """The request is over: nothing of it follows its transaction
        manager any more (the thread's, which later requests use), and
        what it held and did not commit is let go."""
        at_end, self._at_end = self._at_end, None
        for callback in at_end or ():
            callback()
        if self.pending_if_any is not None:
            self.pending_if_any.stop_following()

    def release(self, state=None):
        """Let go of what the request resolved and made, once its response
        is complete (after ``end``, and after the pending cookies were
        applied). Those objects refer to each other (a view and its data,
        the data and its package views), and the request, its environ
        and this context do too; so without this they would all wait for
        the garbage collector, whose passes cost a busy process time on
        every request. What stays (the request, its registry, site and
        the response's pending cookies) is enough for a Session, request
        or view kept after the request: it reads what the request
        committed.

        What stays refers only forward (a Session or a view kept after
        the request to this context, this context to its request), never
        back: the context lets go of its views (a view made after the
        request reads what was sent: the context keeps its response's
        pending cookies) and of its Session. So a request
        nothing keeps is freed whole by reference counting, once its host
        lets go of it too: given ``state`` (the request's environ, where
        the host put the context), the context leaves it, and the request
        keeps only a weak reference to it, with what makes it again for a
        request kept alone (``_Released``)."""
        views, self._views = self._views, None
        for view in (views or {}).values():
            release = getattr(view, 'release', None)
            if release is not None:
                release()
        self._containers = self._data_managers = None
        self.parsed_cookies = self._at_end = None
        session, self.session = self.session, None
        if session is not None:
            session.release()
        if state is not None:
            if state.get(CONTEXT_KEY) is self:
                del state[CONTEXT_KEY]
            self.request.released_context = _Released(self)


class _Released:
    """What a released context leaves with its request: the context
    while something (a kept Session or view) keeps it, else the means to
    serve the request, kept after its response, again (ISession and
    IClientId of it) with the same registry, site and response cookies.
    It refers to nothing that refers back to the request, so it makes no
    cycle."""

    def __init__(self, context):
        self._context = weakref.ref(context)
        self._made = (context._load_registry, context.transaction_manager,
                      context.site, context.pending_if_any, context.hosted)

    def context_for(self, request):
        context = self._context()
        if context is None:
            registry, manager, site, pending, hosted = self._made
            context = RequestContext(request, registry, manager, site,
                                     pending=pending, hosted=hosted)
            self._context = weakref.ref(context)
        return context


class RequestDataManager:
    """The one data manager of a request's request-bound containers.

    A view enlists on its first change (or when its commit must look at
    it): the data manager then joins the transaction under way (the
    thread's manager begins one), once per transaction however many cookie
    and RAM containers take part; a request that changes none of them
    adds nothing to its transaction, and one that only reads runs no
    two-phase commit. Its participants vote (where everything that can
    fail fails) and then finish, or abort, together. A savepoint is taken
    of each (a participant without ``savepoint`` makes the transaction's
    savepoint fail, "Savepoints unsupported"); one taken before the data
    manager joined rolls it back whole.
    """

    def __init__(self, transaction_manager):
        self.transaction_manager = transaction_manager
        self._transaction = None
        self._participants = []
        self._voted = []

    def enlist(self, participant):
        current = self.transaction_manager.get()
        if self._transaction is not current:
            current.join(self)
            self._transaction = current
            self._participants = []
            self._voted = []
        if participant not in self._participants:
            self._participants.append(participant)

    @property
    def joined(self):
        """Whether it takes part in a transaction now."""
        return self._transaction is not None

    def _end(self):
        participants, voted = self._participants, self._voted
        self._participants, self._voted = [], []
        self._transaction = None
        return participants, voted

    def sortKey(self):
        return 'zodbsession.request'

    @property
    def savepoint(self):
        """A savepoint of every participant: its rollback gives each its
        state of now back, and rolls back whole (as an abort does) those
        that came later, which leave."""
        for participant in self._participants:
            if getattr(participant, 'savepoint', None) is None:
                # Then this data manager has none either, as the
                # transaction asks (an optimistic savepoint still passes).
                raise AttributeError('savepoint')
        return self._savepoint

    def _savepoint(self):
        kept = [(participant, participant.savepoint())
                for participant in self._participants]
        return _RequestSavepoint(self, self._transaction, kept)

    def abort(self, txn):
        # Also after a failed vote: who voted ends as a vote that failed
        # does (a RAM store releases its lock), the others as an abort.
        participants, voted = self._end()
        _each(participants, lambda participant: (
            participant.tpc_abort(txn) if participant in voted
            else participant.abort(txn)))

    def tpc_begin(self, txn):
        pass

    def commit(self, txn):
        pass

    def tpc_vote(self, txn):
        for participant in self._participants:
            self._voted.append(participant)
            participant.tpc_vote(txn)

    def tpc_finish(self, txn):
        participants, _voted = self._end()
        if len(participants) == 1:
            # Most requests: one container changed.
            participants[0].tpc_finish(txn)
            return
        _each(participants, lambda participant: participant.tpc_finish(txn))

    def tpc_abort(self, txn):
        participants, _voted = self._end()
        _each(participants, lambda participant: participant.tpc_abort(txn))


class _RequestSavepoint:
    """A savepoint of the request's data manager (``savepoint``); it can
    be rolled back to more than once."""

    def __init__(self, data_manager, txn, kept):
        self.data_manager = data_manager
        self.transaction = txn
        self.kept = kept

    def rollback(self):
        data_manager = self.data_manager
        earlier = [participant for participant, _savepoint in self.kept]
        later = [participant for participant in data_manager._participants
                 if not any(participant is known for known in earlier)]
        data_manager._participants = earlier
        _each(later, lambda participant: participant.abort(self.transaction))
        for _participant, savepoint in self.kept:
            savepoint.rollback()


def _each(participants, call):
    """``call(participant)`` for every participant, even when one raises
    (the first error is raised after the last)."""
    error = None
    for participant in participants:
        try:
            call(participant)
        except BaseException as exc:
            if error is None:
                error = exc
    if error is not None:
        raise error


def request_state(request):
    """Where a request keeps its per-request state: its WSGI environ,
    else its annotations (zope.publisher); None if it has neither."""
    environ = getattr(request, 'environ', None)
    if isinstance(environ, dict):
        return environ
    annotations = getattr(request, 'annotations', None)
    return annotations if isinstance(annotations, dict) else None


def install(request, registry=None, transaction_manager=None, site=None,
            cookies=None, pending=None, hosted=True):
    """Make the context of ``request`` as its host prepares it (see
    RequestContext) and keep it with the request, where ``context_of``
    finds it: a host calls this once per request (per attempt)."""
    context = RequestContext(request, registry, transaction_manager, site,
                             cookies, pending, hosted)
    state = request_state(request)
    if state is None:
        raise TypeError(
            f'a {type(request).__qualname__} keeps no per-request state'
            ' (it has neither a WSGI environ nor annotations)')
    state[CONTEXT_KEY] = context
    return context


def context_of(request):
    """The request's context: the one its host made, else one made now
    (and kept with the request when it can keep state)."""
    try:
        # Most requests: a WSGI or WebOb request that a host prepared.
        return request.environ[CONTEXT_KEY]
    except (AttributeError, KeyError, TypeError):
        pass
    state = request_state(request)
    if state is not None:
        context = state.get(CONTEXT_KEY)
        if context is not None:
            return context
    # A request kept after its host let go of its context (``release``).
    released = getattr(request, 'released_context', None)
    if released is not None:
        return released.context_for(request)
    context = RequestContext(request)
    if state is not None:
        state[CONTEXT_KEY] = context
    return context


def _registry_of(request):
    registry = IComponentLookup(request, None)
    return registry if registry is not None else (
        zope.component.getSiteManager())


# -- the request's cookies ----------------------------------------------------

# Classes that implement IRequestCookies: their instances are their own.
_COOKIE_CLASSES = set()
# The adaptation layer's table of the requests it knows (set by
# zodbsession.adaptation.builtin when it is imported, which the package
# does): found without registration, as zope.session's users register
# none.
_builtin_cookies = None


def use_builtin_cookies(adapt):
    """Answer ``cookies_of`` with ``adapt(request)`` (an IRequestCookies,
    or None) when the registries have no adapter for a request."""
    global _builtin_cookies
    _builtin_cookies = adapt


def cookies_of(request):
    """``IRequestCookies(request)``; a request may be its own."""
    cls = type(request)
    if cls in _COOKIE_CLASSES:
        return request
    if IRequestCookies.implementedBy(cls):
        _COOKIE_CLASSES.add(cls)
        return request
    if IRequestCookies.providedBy(request):
        return request
    cookies = IRequestCookies(request, None)
    if cookies is None and _builtin_cookies is not None:
        cookies = _builtin_cookies(request)
    if cookies is None:
        raise TypeError(
            f'zodbsession cannot read the cookies of a'
            f' {type(request).__module__}.{type(request).__qualname__}:'
            ' register an IRequestCookies adapter for it')
    return cookies


# -- transactions, asked without starting one -----------------------------


# Whether a manager has a transaction under way, asked without starting
# one (``manager.get()`` would).
has_transaction = following.transaction_under_way


def commit_now(manager):
    """Commit the manager's transaction in the middle of a request
    (``persist()``); the request goes on in a new transaction of the same
    manager, which whoever hosts the request ends. An explicit manager
    (pyramid_tm's ``explicit_manager``) has none until one is begun."""
    manager.commit()
    if manager.explicit:
        manager.begin()


# -- for code that holds a request ------------------------------------------


def registry_for(request):
    """The component registry that serves ``request`` (None: the
    current site manager)."""
    if request is None:
        return zope.component.getSiteManager()
    return context_of(request).registry


def utility_for(request, provided, *default):
    """The unnamed ``provided`` utility of the registry that serves
    ``request``; ``default`` if given and there is none, else
    ComponentLookupError."""
    return utility_in(registry_for(request), provided, *default)


def container_for(pkg_id, request=None):
    """The ISessionDataContainer that holds ``pkg_id``'s data (bound to
    ``request`` when given)."""
    if request is None:
        return container_in(zope.component.getSiteManager(), pkg_id)
    return context_of(request).container(pkg_id)


def all_containers(request):
    """Every registered ISessionDataContainer, each once."""
    return context_of(request).all_containers()


def transaction_manager_for(request, container=None):
    """The manager of the request's transaction (see
    ``RequestContext.transaction_manager_for``)."""
    return context_of(request).transaction_manager_for(container)


def environ_registry(request):
    """The registry the host of ``request`` gave its context, or None:
    the IComponentLookup adapter of WSGI and WebOb requests."""
    environ = getattr(request, 'environ', None)
    context = environ.get(CONTEXT_KEY) if isinstance(environ, dict) else None
    return None if context is None else context.host_registry
