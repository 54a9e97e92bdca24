"""Background maintenance: sweeping and packing on a schedule, one
process at a time, and publishing each process's figures; driven with a
manual clock by calling ``tick()`` (no sleeps)."""
import logging
import os
import threading

import pytest
import transaction
import ZODB

from zodbsession import clock
from zodbsession.cli import main
from zodbsession.db import open_database
from zodbsession.maintenance import Maintenance
from zodbsession.maintenance import maintenance_of
from zodbsession.packing import DEFAULT_PACK_INTERVAL
from zodbsession.packing import claim_pack
from zodbsession.packing import read_maintenance
from zodbsession.interfaces import ISessionMaintenance
from zodbsession.settings import parse_settings
from zodbsession.testing import SessionTestClient
from zodbsession.testing import filestorage_db
from zodbsession.testing.zeo import zeo_server
from zodbsession.wsgi import SessionMiddleware
from zope.interface.verify import verifyObject

START = 1_700_000_000
DAY = 24 * 3600


def writer_app(environ, start_response):
    session = environ['zodbsession.session']
    if environ['PATH_INFO'] == '/write':
        data = session['app']
        data['n'] = data.get('n', 0) + 1
        data['blob'] = 'x' * 500
    else:
        session.get('app')
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'ok']


@pytest.fixture
def manual_clock():
    with clock.use_clock(clock.ManualClock(START)) as manual:
        yield manual


@pytest.fixture
def db(tmp_path):
    with filestorage_db(str(tmp_path)) as database:
        yield database


def write_sessions(app, clients, writes=3):
    for _ in range(writes):
        for client in clients:
            status, _headers, _body = client.call(app, PATH_INFO='/write')
            assert status == '200 OK'


def test_the_middleware_starts_maintenance_with_a_one_day_default(db):
    app = SessionMiddleware(writer_app, db=db)
    maintenance = maintenance_of(db)
    assert app.maintenance is maintenance
    verifyObject(ISessionMaintenance, maintenance)
    assert maintenance.pack_interval == DEFAULT_PACK_INTERVAL == DAY
    assert maintenance.running


def test_the_thread_of_a_closed_database_ends_without_a_warning(
        tmp_path, caplog):
    # A host's database closed (an application shut down, a test's
    # fixture torn down): its maintenance thread stops quietly rather
    # than warn of a failing tick every minute for the rest of the
    # process.
    database = open_database(f'file://{tmp_path}/Data.fs')
    maintenance = Maintenance(database).start(every=0.2)
    assert maintenance.running
    with caplog.at_level('DEBUG', logger='zodbsession'):
        database.close()
        maintenance._thread.join(10)
    assert not maintenance.running
    # (Its thread's records only: other tests' threads may log too.)
    assert [r.getMessage() for r in caplog.records
            if r.thread == maintenance._thread.ident
            and r.levelname != 'DEBUG'] == []


class _Records(logging.Handler):
    """The records one maintenance's thread logs, and an event set once
    ``wanted(self)`` holds."""

    def __init__(self, maintenance, wanted):
        super().__init__(logging.DEBUG)
        self.maintenance = maintenance
        self.records = []
        self.wanted = wanted
        self.seen = threading.Event()

    def emit(self, record):
        # (Other tests' maintenance threads may log meanwhile.)
        if record.thread != self.maintenance._thread.ident:
            return
        self.records.append(record)
        if self.wanted(self):
            self.seen.set()

    def levels(self):
        return [record.levelname for record in self.records]


def test_a_storage_outage_is_warned_of_once(tmp_path):
    logger = logging.getLogger('zodbsession.hosting.maintenance')
    # Three failed ticks: the outage goes on after its warning. (Each
    # waits a second for the server: the database's server_timeout.)
    with zeo_server(str(tmp_path)) as uri:
        database = open_database(uri, server_timeout=1)
    # The server is gone; the database stays open.
    maintenance = Maintenance(database)
    records = _Records(maintenance,
                       lambda handler: handler.levels().count('DEBUG') >= 3)
    level = logger.level
    logger.addHandler(records)
    logger.setLevel(logging.DEBUG)
    maintenance.start(every=0.05)
    try:
        assert records.seen.wait(60)
    finally:
        maintenance.stop()
        logger.removeHandler(records)
        logger.setLevel(level)
        database.close()
    levels = records.levels()
    assert levels.count('WARNING') == 1
    # Told at the tick after the first failure, the database still open.
    assert levels.index('WARNING') == 1
    [warning] = [r for r in records.records if r.levelname == 'WARNING']
    message = warning.getMessage()
    # The first failure's traceback follows the line the docs quote.
    assert message.startswith(
        'session maintenance failed; retrying every 0.05 s\nTraceback')
    assert 'ClientDisconnected' in message


def test_a_tick_sweeps_then_packs_keeping_no_old_copy(db, tmp_path,
                                                      manual_clock):
    app = SessionMiddleware(writer_app, db=db)
    write_sessions(app, [SessionTestClient() for _ in range(30)])
    grown = db.getSize()
    manual_clock.advance(2 * 3600)      # past timeout + resolution
    done = maintenance_of(db).tick()
    assert done['sweep']['removed'][''] >= 1
    assert done['pack']['size_after'] < done['pack']['size_before']
    assert db.getSize() < grown / 3
    assert not os.path.exists(str(tmp_path / 'sessions.fs.old'))
    last_sweep, last_pack = read_maintenance(db)
    assert last_sweep['at'] == last_pack['at'] == START + 2 * 3600
    assert last_pack['seconds'] >= 0


def test_the_next_pack_waits_for_the_interval(db, manual_clock):
    SessionMiddleware(writer_app, db=db)
    maintenance = maintenance_of(db)
    assert maintenance.tick()['pack'] is not None
    manual_clock.advance(DAY - 1)
    assert maintenance.tick()['pack'] is None
    manual_clock.advance(1)
    assert maintenance.tick()['pack'] is not None


def test_pack_interval_0_never_packs(db, manual_clock):
    SessionMiddleware(writer_app, db=db, pack_interval=0)
    maintenance = maintenance_of(db)
    for _ in range(3):
        assert maintenance.tick()['pack'] is None
        manual_clock.advance(10 * DAY)
    assert read_maintenance(db)[1] is None


def test_two_processes_sharing_a_zeo_database_pack_once(tmp_path,
                                                        manual_clock):
    with zeo_server(str(tmp_path)) as uri:
        first, second = open_database(uri), open_database(uri)
        try:
            one = Maintenance(first)
            other = Maintenance(second)
            assert one.tick()['pack'] is not None
            assert other.tick()['pack'] is None     # sees the claim
            manual_clock.advance(DAY)
            assert other.tick()['pack'] is not None
            assert one.tick()['pack'] is None
        finally:
            first.close()
            second.close()


def test_concurrent_claims_let_one_process_pack(tmp_path, manual_clock):
    with zeo_server(str(tmp_path)) as uri:
        databases = [open_database(uri) for _ in range(4)]
        try:
            barrier = threading.Barrier(len(databases))
            claims = []

            def claim(database):
                barrier.wait(10)
                claims.append(claim_pack(database, DAY))
            threads = [threading.Thread(target=claim, args=(database,))
                       for database in databases]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            assert sorted(claims) == [False, False, False, True]
        finally:
            for database in databases:
                database.close()


def test_a_read_only_request_writes_nothing_for_the_statistics(
        db, manual_clock):
    app = SessionMiddleware(writer_app, db=db)
    client = SessionTestClient()
    client.call(app, PATH_INFO='/write')
    maintenance_of(db).tick()
    last = db.lastTransaction()
    for _ in range(5):
        client.call(app, PATH_INFO='/read')
    assert db.lastTransaction() == last


def test_figures_are_published_at_most_once_a_minute(db, manual_clock):
    app = SessionMiddleware(writer_app, db=db)
    maintenance = maintenance_of(db)
    client = SessionTestClient()
    client.call(app, PATH_INFO='/write')
    assert maintenance.tick()['published']
    client.call(app, PATH_INFO='/write')
    manual_clock.advance(30)
    assert not maintenance.tick()['published']
    manual_clock.advance(30)
    assert maintenance.tick()['published']
    # Nothing new: nothing written.
    manual_clock.advance(300)
    assert not maintenance.tick()['published']


@pytest.mark.parametrize('value', [-1, float('nan'), 'daily', True])
def test_a_bad_pack_interval_is_refused_by_name(db, value):
    with pytest.raises(ValueError, match='pack_interval'):
        SessionMiddleware(writer_app, db=ZODB.DB(None),
                          pack_interval=value)


def test_the_paste_filter_parses_pack_interval():
    assert parse_settings({'pack_interval': '3600'}) == {
        'pack_interval': 3600.0}
    with pytest.raises(ValueError, match='pack_interval'):
        parse_settings({'pack_interval': 'weekly'})


def test_the_paste_filter_passes_pack_interval_on():
    from zodbsession.wsgi import make_filter
    middleware = make_filter(writer_app, {}, db_uri='memory://',
                             pack_interval='0')
    try:
        assert maintenance_of(middleware.db).pack_interval == 0
    finally:
        middleware.db.close()


def test_pyramid_settings_take_pack_interval():
    from zodbsession.pyramid.factory import session_factory_from_settings
    factory = session_factory_from_settings({
        'zodbsession.db_uri': 'memory://',
        'zodbsession.pack_interval': '600'})
    try:
        assert maintenance_of(factory.db).pack_interval == 600
    finally:
        factory.close()


def test_pyramid_settings_refuse_a_bad_pack_interval():
    from zodbsession.pyramid.factory import session_factory_from_settings
    with pytest.raises(ValueError, match='pack_interval'):
        session_factory_from_settings({
            'zodbsession.db_uri': 'memory://',
            'zodbsession.pack_interval': '-5'})


def test_serve_refuses_a_bad_pack_interval(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(['serve', '--pack-interval', 'soon'])
    assert exit_info.value.code == 2
    assert '--pack-interval' in capsys.readouterr().err


def test_the_pack_command_keeps_no_old_copy(tmp_path, capsys):
    path = tmp_path / 'p.fs'
    database = open_database(f'file://{path}')
    SessionMiddleware(writer_app, db=database)
    write_sessions(SessionMiddleware(writer_app, db=database),
                   [SessionTestClient()])
    database.close()
    assert main(['pack', '--db', f'file://{path}']) == 0
    assert not os.path.exists(f'{path}.old')
    transaction.abort()
