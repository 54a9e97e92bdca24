"""How a request's transaction ends: one rule for every hosting."""
from zodbsession.context import commit_now  # noqa: F401 (its old home)
from zodbsession.context import has_transaction


def end_transaction(manager, abort=False, before_abort=None,
                    under_way=False):
    """Commit the manager's transaction, or abort it when ``abort`` is
    true or the transaction is doomed. A failed commit is aborted and
    its error raised, for the retry policy to judge; ``before_abort(error)``
    is called first, while the transaction's changes are still there to
    look at. With no transaction under way (the request changed nothing)
    there is nothing to end; ``under_way`` true: the caller knows there
    is one. Returns whether there was a transaction."""
    if not (under_way or has_transaction(manager)):
        return False
    # The transaction itself, asked once (each of the manager's own
    # calls asks it for the transaction again).
    txn = manager.get()
    if abort or txn.isDoomed():
        txn.abort()
        return True
    try:
        txn.commit()
    except BaseException as error:
        if before_abort is not None:
            before_abort(error)
        manager.abort()
        raise
    return True


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
