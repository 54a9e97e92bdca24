"""How a request's transaction ends: one rule for every hosting."""


def end_transaction(manager, abort=False):
    """Commit the manager's transaction, or abort it when ``abort`` is
    true or the transaction is doomed. A failed commit is aborted and
    its error raised, for the retry policy to judge."""
    if abort or manager.isDoomed():
        manager.abort()
        return
    try:
        manager.commit()
    except BaseException:
        manager.abort()
        raise
