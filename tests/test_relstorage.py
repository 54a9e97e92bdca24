"""The ZEO workload again, on RelStorage with PostgreSQL.

Needs ``ZODBSESSION_TEST_PG_DSN`` (a libpq DSN such as
``dbname=zodbsession_test user=postgres host=127.0.0.1 port=54329``);
``.ci/run`` starts a throwaway cluster and sets it. The database is
emptied (RelStorage's ``zap_all``) before the tests.
"""
import os
import urllib.parse

import pytest

from zodbsession.db import open_database
from zodbsession.site import ensure_site
from zodbsession.site import site_of
from zodbsession.testing.checks import check_concurrent_increments
from zodbsession.testing.checks import check_different_keys
from zodbsession.testing.checks import check_shared_sessions
from zodbsession.testing.workers import session_worker

DSN_VARIABLE = 'ZODBSESSION_TEST_PG_DSN'
INCREMENTS = 25            # per thread; two threads per worker


def postgres_uri(dsn):
    """The zodburi ``postgres://`` URI of a libpq DSN."""
    from psycopg2.extensions import parse_dsn
    parts = parse_dsn(dsn)
    user = urllib.parse.quote(parts.get('user', ''), safe='')
    password = parts.get('password')
    credentials = user + (
        ':' + urllib.parse.quote(password, safe='') if password else '')
    host = parts.get('host', '127.0.0.1')
    port = parts.get('port', '5432')
    return (f'postgres://{credentials}@{host}:{port}/{parts["dbname"]}'
            '?connect_timeout=10')


@pytest.fixture(scope='module')
def pg_uri():
    dsn = os.environ.get(DSN_VARIABLE)
    if not dsn:
        pytest.skip(f'{DSN_VARIABLE} is not set: no PostgreSQL to test'
                    ' RelStorage against (.ci/run starts one)')
    pytest.importorskip('relstorage')
    psycopg2 = pytest.importorskip('psycopg2')
    try:
        psycopg2.connect(dsn, connect_timeout=5).close()
    except psycopg2.OperationalError as exc:
        first_line = str(exc).strip().splitlines()[0]
        pytest.skip(f'PostgreSQL at {DSN_VARIABLE}={dsn!r} is unreachable:'
                    f' {first_line}')
    uri = postgres_uri(dsn)
    db = open_database(uri)
    try:
        db.storage.zap_all()
    finally:
        db.close()
    return uri


@pytest.fixture(scope='module')
def workers(pg_uri, tmp_path_factory):
    directory = str(tmp_path_factory.mktemp('relstorage'))
    with session_worker(pg_uri, directory) as first, \
            session_worker(pg_uri, directory) as second:
        yield first, second


def test_the_database_is_relstorage(pg_uri, registry):
    from relstorage.storage import RelStorage
    db = open_database(pg_uri)
    try:
        assert isinstance(db.storage, RelStorage)
        ensure_site(db)
        with db.transaction() as connection:
            assert site_of(connection).client_id_manager.secret
    finally:
        db.close()


def test_clients_are_shared_between_processes(workers):
    check_shared_sessions(*workers)


def test_different_keys_across_processes_merge_without_retries(workers):
    check_different_keys(*workers, changes=INCREMENTS)


def test_concurrent_increments_across_processes(workers, record_property):
    retries = check_concurrent_increments(*workers, INCREMENTS)
    record_property('retries', retries)
    print(f'RelStorage: {4 * INCREMENTS} increments from two processes'
          f' needed {retries} retries')


def test_postgres_uri():
    pytest.importorskip('psycopg2')
    assert postgres_uri(
        "dbname=sessions user=zodb password='p@ss word' host=db port=5433"
    ) == ('postgres://zodb:p%40ss%20word@db:5433/sessions'
          '?connect_timeout=10')


def test_scheduled_packing_on_relstorage(pg_uri, tmp_path):
    """Two processes' maintenance over one RelStorage database: one packs
    (the claim), and what sweeping unlinked is reclaimed."""
    from zodbsession import clock
    from zodbsession.maintenance import Maintenance
    from zodbsession.packing import read_maintenance
    from zodbsession.testing import SessionTestClient
    from zodbsession.wsgi import SessionMiddleware

    def app(environ, start_response):
        data = environ['zodbsession.session']['app']
        data['blob'] = 'x' * 2000
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [b'ok']

    first, second = open_database(pg_uri), open_database(pg_uri)
    try:
        with clock.use_clock(clock.ManualClock(1_700_000_000)) as manual:
            sessions = SessionMiddleware(app, db=first)
            for _ in range(20):
                SessionTestClient().call(sessions, PATH_INFO='/')
            manual.advance(2 * 3600)
            one, other = Maintenance(first), Maintenance(second)
            done = one.tick()
            assert done['sweep']['removed'][''] >= 1
            assert done['pack'] is not None
            assert other.tick()['pack'] is None
            assert read_maintenance(second)[1]['at'] == 1_700_000_000 + 7200
    finally:
        first.close()
        second.close()


def test_revoking_a_principal_across_processes(workers):
    from zodbsession.testing.workers import SessionHTTPClient
    first, second = workers
    laptop, phone = SessionHTTPClient(), SessionHTTPClient()
    laptop.request(first.url, '/login', form={'user': 'rel-ada'})
    phone.request(second.url, '/login', form={'user': 'rel-ada'})
    assert laptop.request(first.url, '/revoke', form={})['data'] == {
        'revoked': 1}
    # RelStorage polls for changes when a transaction starts: the other
    # process sees the revocation on the phone's next request.
    assert phone.request(second.url, '/read')['data'] is None
    assert laptop.request(second.url, '/read')['data']['user'] == 'rel-ada'
