"""``zodbsession stats [--json]``: containers, slices, record sizes,
storage, last sweep and pack, and what the running processes published
(requests, retries, conflicts by key, 503s)."""
import json

import pytest

from zodbsession import clock
from zodbsession.cli import main
from zodbsession.db import open_database
from zodbsession.maintenance import maintenance_of
from zodbsession.procstats import conflict_label
from zodbsession.procstats import counters
from zodbsession.site import site_of
from zodbsession.stats import collect
from zodbsession.testing import SessionTestClient
from zodbsession.wsgi import SessionMiddleware
from ZODB.POSException import ConflictError

START = 1_700_000_000


def conflicting_app(db):
    """Increments ``app/n``; its first attempt meets a concurrent change
    of the same key (committed meanwhile by another connection), so it
    conflicts once and is retried."""
    def app(environ, start_response):
        session = environ['zodbsession.session']
        data = session['app']
        data['n'] = data.get('n', 0) + 1
        if environ['PATH_INFO'] == '/fight' and (
                environ['zodbsession.attempt'] == 0):
            client_id = session.client_id
            with db.transaction() as connection:
                site_of(connection).container[client_id]['app']['n'] = 99
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [b'%d' % data['n']]
    return app


@pytest.fixture
def manual_clock():
    with clock.use_clock(clock.ManualClock(START)) as manual:
        yield manual


def test_a_retried_conflict_is_counted_by_its_key(tmp_path, manual_clock,
                                                  capsys):
    uri = f'file://{tmp_path}/s.fs'
    db = open_database(uri)
    before = counters.figures()
    app = SessionMiddleware(conflicting_app(db), db=db)
    clients = [SessionTestClient() for _ in range(3)]
    for client in clients:
        client.call(app, PATH_INFO='/')
    status, _headers, body = clients[0].call(app, PATH_INFO='/fight')
    assert (status, body) == ('200 OK', b'100')
    after = counters.figures()
    assert after['requests'] - before['requests'] == 4
    assert after['retries'] - before['retries'] == 1
    assert after['conflicts']['app/n'] - before['conflicts'].get(
        'app/n', 0) == 1
    manual_clock.advance(2 * 3600)
    maintenance_of(db).tick()
    db.close()

    assert main(['stats', '--db', uri, '--json']) == 0
    figures = json.loads(capsys.readouterr().out)
    unnamed = figures['containers'][0]
    assert unnamed['name'] == '' and unnamed['sessions'] == 0
    assert figures['last_sweep']['removed'] == {'': 1}
    assert figures['last_pack']['size_after'] < figures['last_pack'][
        'size_before']
    assert figures['storage_size'] < figures['last_pack']['size_before']
    mine = [p for p in figures['processes']
            if p['process'] == counters.name]
    assert mine and mine[0]['requests'] >= 4
    assert figures['totals']['conflicts']['app/n'] >= 1
    assert 'secret' not in json.dumps(figures['cookie'])

    assert main(['stats', '--db', uri]) == 0
    out = capsys.readouterr().out
    assert 'last pack: at 1700007200' in out
    assert 'removed (unnamed): 1 slice(s)' in out
    assert '  app/n: ' in out
    assert f'  {counters.name}: requests=' in out


def test_live_slices_and_record_sizes(tmp_path, manual_clock):
    db = open_database(f'file://{tmp_path}/s.fs')
    try:
        app = SessionMiddleware(conflicting_app(db), db=db)
        for _ in range(5):
            SessionTestClient().call(app, PATH_INFO='/')
        manual_clock.advance(600)
        for _ in range(2):
            SessionTestClient().call(app, PATH_INFO='/')
        figures = collect(db)
        unnamed = figures['containers'][0]
        assert unnamed['sessions'] == unnamed['live_sessions'] == 7
        assert [s['sessions'] for s in unnamed['slices']] == [5, 2]
        sizes = unnamed['record_bytes']
        assert sizes['sampled'] == 7
        assert 0 < sizes['median'] <= sizes['p99'] <= sizes['max'] < 1000
        assert figures['last_pack'] is None
    finally:
        db.close()


def test_collecting_writes_nothing(tmp_path):
    db = open_database(f'file://{tmp_path}/s.fs')
    try:
        SessionMiddleware(conflicting_app(db), db=db)
        last = db.lastTransaction()
        collect(db)
        assert db.lastTransaction() == last
    finally:
        db.close()


def test_conflict_labels():
    error = ConflictError('x')
    error.add_note("both transactions changed session key 'shop/cart'")
    assert conflict_label(error) == 'shop/cart'
    assert conflict_label(ConflictError('y')) == '(unknown)'
