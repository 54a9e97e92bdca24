"""Changing a database's session site, from any process of a cluster.

Each change runs in a transaction of its own, retried when processes
that start together bootstrap the same site at once; this process's
snapshot of the site is retaken at once after a change.
"""
from zodbsession.hosting.coldstart import retry_races
from zodbsession.hosting.snapshot import snapshots
from zodbsession.site import ROOT_KEY
from zodbsession.site import SessionSite
from zodbsession.site import site_of


def run_in_transaction(db, function):
    """``function(connection)`` in a transaction of its own, committed.

    Administrative changes (bootstrap, registrations) retry conflicts here
    (for up to ``coldstart.STARTUP_BUDGET`` seconds, with jittered
    backoff: every worker of a cluster bootstraps the same site when they
    start together); requests have the middleware's retry loop.
    """
    def attempt():
        with db.transaction() as connection:
            return function(connection)
    return retry_races(attempt, 'a session site change')


def ensure_site(db, **settings):
    """Create the database's SessionSite if missing; apply settings.

    Safe when several processes start at once: a conflict is retried.
    """
    def bootstrap(connection):
        root = connection.root()
        if ROOT_KEY not in root:
            root[ROOT_KEY] = SessionSite()
        root[ROOT_KEY].configure(**settings)
    run_in_transaction(db, bootstrap)
    snapshots.forget(db)


def change_site(db, change):
    """Run ``change(site)`` in its own transaction and commit it.

    This process sees the change at once; other processes within
    ``SNAPSHOT_TTL`` seconds.
    """
    try:
        return run_in_transaction(
            db, lambda connection: change(site_of(connection)))
    finally:
        snapshots.forget(db)


def ensure_container(db, pkg_id, make, matches):
    """Keep ``pkg_id``'s data in the container ``make()`` returns, unless
    the one registered for it already ``matches(container)``: a host
    that configures a package's container at every start writes only
    when its configuration changed (a new container starts empty)."""
    def change(site):
        current = site.containers().get(pkg_id)
        if current is None or not matches(current):
            site.register_container(pkg_id, make())
    change_site(db, change)
