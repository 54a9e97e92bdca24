"""How a request's transaction ends: one rule for every hosting."""


def has_transaction(manager):
    """Whether ``manager`` has a transaction under way, asked without
    starting one (``manager.get()`` would).

    A manager of another make, whose state this cannot see, is taken to
    have one: then the request ends the way it always did.
    """
    return getattr(manager, '_txn', True) is not None


def end_transaction(manager, abort=False, before_abort=None):
    """Commit the manager's transaction, or abort it when ``abort`` is
    true or the transaction is doomed. A failed commit is aborted and
    its error raised, for the retry policy to judge; ``before_abort(error)``
    is called first, while the transaction's changes are still there to
    look at. With no transaction under way (the request changed nothing)
    there is nothing to end."""
    if not has_transaction(manager):
        return
    if abort or manager.isDoomed():
        manager.abort()
        return
    try:
        manager.commit()
    except BaseException as error:
        if before_abort is not None:
            before_abort(error)
        manager.abort()
        raise


def commit_now(manager):
    """Commit the manager's transaction in the middle of a request
    (``persist()``); the request goes on in a new transaction of the same
    manager, which whoever hosts the request ends. An explicit manager
    (pyramid_tm's ``explicit_manager``) has none until one is begun."""
    manager.commit()
    if manager.explicit:
        manager.begin()
