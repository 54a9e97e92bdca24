"""How a request's transaction ends: one rule for every hosting."""


class _Probe:
    """A synchronizer that only notes whether it was told of a
    transaction: ``registerSynch`` tells a synchronizer that registers
    while a transaction is active about it (ITransactionManager)."""

    __slots__ = ('active', '__weakref__')

    def __init__(self):
        self.active = False

    def newTransaction(self, txn):
        self.active = True

    def beforeCompletion(self, txn):
        pass

    def afterCompletion(self, txn):
        pass


def has_transaction(manager):
    """Whether ``manager`` has a transaction under way, asked without
    starting one (``manager.get()`` would)."""
    probe = _Probe()
    manager.registerSynch(probe)
    manager.unregisterSynch(probe)
    return probe.active


def end_transaction(manager, abort=False, before_abort=None):
    """Commit the manager's transaction, or abort it when ``abort`` is
    true or the transaction is doomed. A failed commit is aborted and
    its error raised, for the retry policy to judge; ``before_abort(error)``
    is called first, while the transaction's changes are still there to
    look at. With no transaction under way (the request changed nothing)
    there is nothing to end. Returns whether there was a transaction."""
    if not has_transaction(manager):
        return False
    if abort or manager.isDoomed():
        manager.abort()
        return True
    try:
        manager.commit()
    except BaseException as error:
        if before_abort is not None:
            before_abort(error)
        manager.abort()
        raise
    return True


def commit_now(manager):
    """Commit the manager's transaction in the middle of a request
    (``persist()``); the request goes on in a new transaction of the same
    manager, which whoever hosts the request ends. An explicit manager
    (pyramid_tm's ``explicit_manager``) has none until one is begun."""
    manager.commit()
    if manager.explicit:
        manager.begin()


def vetoes_commit(status, x_tm=None):
    """Whether a response vetoes its request's commit: the rule of
    ``pyramid_tm.default_commit_veto``, for every host that answers by
    status. ``x_tm``, the response's ``X-Tm`` header, decides when
    present (``commit`` commits, any other value aborts); without it a
    4xx or 5xx ``status`` (text such as ``'404 Not Found'``, or a number)
    aborts and any other commits."""
    if x_tm is not None:
        return x_tm != 'commit'
    return str(status).startswith(('4', '5'))
