"""PostgreSQL restarts in the middle of traffic (RelStorage).

The test needs to stop and start the server, so it runs a throwaway
cluster of its own (``PostgresCluster``: initdb in a temporary directory,
a free port, run as the ``postgres`` user when the test runs as root)
rather than the database of ``ZODBSESSION_TEST_PG_DSN``. It is skipped,
with the reason, where no PostgreSQL server binaries are installed.

While the server is down, session writes get 503 with Retry-After (the
connection is refused at once) and other pages still work; once it is
back, the worker's pooled connections reconnect by themselves and every
acknowledged write is stored. Both a clean restart (``pg_ctl stop -m
fast``) and a crash-like one (``-m immediate``: no shutdown checkpoint,
WAL recovery on start) are played.
"""
import pytest

from zodbsession.db import is_storage_unavailable
from zodbsession.db import shared_database
from zodbsession.testing.checks import check_outage
from zodbsession.testing.postgres import PostgresCluster
from zodbsession.testing.postgres import postgres_cluster
from zodbsession.testing.workers import session_worker

pytest.importorskip('relstorage')
psycopg2 = pytest.importorskip('psycopg2')

RETRY_AFTER = 7
# Seconds a request may take while the server is down: a refused
# connection fails at once; the rest is slack for a loaded machine.
BOUND = 3


@pytest.fixture(scope='module')
def cluster():
    reason = PostgresCluster.unavailable_reason()
    if reason:
        pytest.skip(f'cannot run a PostgreSQL cluster to restart: {reason}')
    with postgres_cluster() as cluster:
        yield cluster


@pytest.mark.parametrize('mode', ['fast', 'immediate'])
def test_postgres_restart(cluster, mode, tmp_path, record_property):
    cluster.check_running()
    with session_worker(cluster.uri(), str(tmp_path),
                        retry_after=RETRY_AFTER) as worker:
        figures = check_outage(
            worker, lambda: cluster.stop(mode), cluster.start,
            retry_after=RETRY_AFTER)
        figures['server_connections'] = _connections(cluster)

    assert figures['slowest_503'] < BOUND, figures
    assert figures['slowest_plain'] < BOUND, figures
    # No connection was left behind by the failed requests: RelStorage
    # holds a load and a store connection per ZODB connection, the
    # worker's pool keeps up to 7 (ZODB's default), the database 1 more.
    assert figures['server_connections'] <= 2 * (7 + 1), figures
    for name, value in figures.items():
        record_property(name, value)
    print(f'PostgreSQL restart ({mode}): ' + ', '.join(
        f'{name}={value:.3f}' if isinstance(value, float)
        else f'{name}={value}' for name, value in figures.items()))


def test_only_a_lost_server_counts_as_unavailable(cluster):
    """Errors from a server that is up (a cancelled statement) are not
    outages; a connection the server ends, or one it refuses, is."""
    connection = psycopg2.connect(cluster.dsn)
    other = psycopg2.connect(cluster.dsn)
    try:
        with connection.cursor() as cursor:
            cursor.execute('SET statement_timeout = 10')
            with pytest.raises(psycopg2.OperationalError) as cancelled:
                cursor.execute('SELECT pg_sleep(5)')
        assert cancelled.value.pgcode == '57014'
        assert not is_storage_unavailable(cancelled.value)
        connection.rollback()

        with connection.cursor() as cursor:
            cursor.execute('SELECT pg_backend_pid()')
            pid, = cursor.fetchone()
        with other.cursor() as cursor:
            cursor.execute('SELECT pg_terminate_backend(%s)', (pid,))
        with pytest.raises(psycopg2.OperationalError) as ended:
            with connection.cursor() as cursor:
                cursor.execute('SELECT 1')
        assert is_storage_unavailable(ended.value)
    finally:
        connection.close()
        other.close()

    with pytest.raises(psycopg2.OperationalError) as refused:
        psycopg2.connect(cluster.dsn.replace(
            f'port={cluster.port}', f'port={_closed_port()}'),
            connect_timeout=5)
    assert is_storage_unavailable(refused.value)


def _connections(cluster):
    """How many connections the test database has (this one excluded)."""
    connection = psycopg2.connect(cluster.dsn)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                'SELECT count(*) FROM pg_stat_activity'
                ' WHERE datname = current_database()'
                ' AND pid <> pg_backend_pid()')
            return cursor.fetchone()[0]
    finally:
        connection.close()


def _closed_port():
    from zodbsession.testing.processes import free_port
    return free_port()


def test_a_shared_database_stays_the_one_while_the_server_is_down(cluster):
    # A host made during an outage (an application factory called again)
    # gets the process's database, which reconnects once the server is
    # back: not a second database, nor an error.
    cluster.check_running()
    uri = cluster.uri()
    first = shared_database(uri)
    try:
        cluster.stop('fast')
        try:
            assert shared_database(uri) is first
        finally:
            cluster.start()
        # Its pooled connections find the server gone once, as a host's
        # first request after an outage does (and runs again); then it
        # commits.
        for attempt in range(3):
            try:
                with first.transaction() as connection:
                    connection.root()['after the outage'] = True
                break
            except Exception as error:
                if attempt == 2 or not is_storage_unavailable(error):
                    raise
        with first.transaction() as connection:
            assert connection.root()['after the outage'] is True
    finally:
        first.close()
