"""A value changed in place is kept, without ``changed()``.

``data['cart'].append(item)`` and ``data['prefs']['theme'] = 'dark'`` are
stored when the request commits, in every container, and survive
reopening the database; values only read write nothing.
"""
import datetime
import json

import pytest
import transaction
import webtest
from ZODB.POSException import ConflictError

from zodbsession import CookieSessionDataContainer
from zodbsession import ISession
from zodbsession import RAMSessionDataContainer
from zodbsession import SessionData
from zodbsession import SessionPkgData
from zodbsession import testing
from zodbsession.testing import StorageMeter
from zodbsession.testing import set_cookie_headers
from zodbsession.testing import use_containers
from zodbsession.wsgi import SessionMiddleware

PKG = 'test.inplace'

CONTAINERS = {
    'persistent': None,
    'ram': RAMSessionDataContainer,
    'cookie': lambda: CookieSessionDataContainer(
        secret='inplace-cookie-container-secret-1'),
}


def spread_set():
    """A set whose pickle changes after a round trip (its table was sized
    for more elements than it keeps), though its value does not."""
    values = set(range(100))
    for number in range(91):
        values.discard(number)
    return values


class Basket:
    """A value of an application class, compared by its pickle."""

    def __init__(self):
        self.items = []


class Actions:
    """What the test application does, by path."""

    @staticmethod
    def store(data):
        data['cart'] = ['apple']
        data['prefs'] = {'theme': 'light', 'size': 'small'}

    @staticmethod
    def mutate(data):
        data['cart'].append('pear')
        data['prefs']['theme'] = 'dark'

    @staticmethod
    def read(data):
        assert data['cart'] and data['prefs']

    @staticmethod
    def mutate_and_doom(data):
        data['cart'].append('doomed')
        transaction.manager.doom()

    @staticmethod
    def mutate_and_fail(data):
        data['cart'].append('lost')
        raise ValueError('aborted')


def app(environ, start_response):
    data = ISession(environ['zodbsession.request'])[PKG]
    action = environ['PATH_INFO'].strip('/')
    if action != 'show':
        getattr(Actions, action)(data)
    body = json.dumps(dict(data), sort_keys=True).encode('utf-8')
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [body]


def shown(browser):
    return browser.get('/show').text


EXPECTED = json.dumps({'cart': ['apple', 'pear'],
                       'prefs': {'size': 'small', 'theme': 'dark'}},
                      sort_keys=True)


@pytest.fixture(params=sorted(CONTAINERS))
def kind(request):
    return request.param


def site(db, kind):
    make = CONTAINERS[kind]
    middleware = SessionMiddleware(app, db=db)
    if make is not None:
        use_containers(db, **{PKG: make()})
    return middleware


def test_changes_in_place_are_stored_and_survive_reopening(
        registry, tmp_path, kind):
    directory = str(tmp_path)
    with testing.filestorage_db(directory) as db:
        browser = webtest.TestApp(site(db, kind))
        browser.get('/store')
        browser.get('/mutate')
        assert shown(browser) == EXPECTED
        cookies = dict(browser.cookies)
    # Another process's view: a new database object on the same file,
    # nothing cached (the RAM container's data is this process's).
    with testing.filestorage_db(directory) as db:
        again = webtest.TestApp(SessionMiddleware(app, db=db))
        for name, value in cookies.items():
            again.set_cookie(name, value)
        assert shown(again) == EXPECTED


def test_values_only_read_write_nothing(registry, db, kind):
    browser = webtest.TestApp(site(db, kind))
    browser.get('/store')
    browser.get('/show')
    meter = StorageMeter(db)
    for _ in range(5):
        assert set_cookie_headers(browser.get('/read')) == []
    assert not meter.committed


def test_a_change_in_place_that_is_aborted_is_forgotten(registry, db, kind):
    browser = webtest.TestApp(site(db, kind))
    browser.get('/store')
    with pytest.raises(ValueError):
        browser.get('/mutate_and_fail')
    # The same (pooled) connection serves the next request.
    assert shown(browser) == json.dumps(
        {'cart': ['apple'], 'prefs': {'size': 'small', 'theme': 'light'}},
        sort_keys=True)


def test_a_change_in_place_in_a_doomed_request_is_forgotten(
        registry, db, kind):
    browser = webtest.TestApp(site(db, kind))
    browser.get('/store')
    meter = StorageMeter(db)
    browser.get('/mutate_and_doom')
    assert json.loads(shown(browser))['cart'] == ['apple']
    assert not meter.committed


# -- on the data objects, over a FileStorage --------------------------------

def open_root(db):
    manager = transaction.TransactionManager()
    return manager, db.open(manager).root()


def store(db, **items):
    manager, root = open_root(db)
    data = SessionData()
    data['pkg'] = SessionPkgData()
    data['pkg'].update(items)
    root['session'] = data
    manager.commit()
    root._p_jar.close()
    db.cacheMinimize()


def fresh_pkg(db):
    db.cacheMinimize()
    manager, root = open_root(db)
    items = dict(root['session']['pkg'])
    manager.abort()
    root._p_jar.close()
    return items


BUILT_INS = {
    'set': spread_set(),
    'nested': {'b': [1, {2, 3}], 'a': (b'x', 1.5, None, 'text')},
    'when': datetime.datetime(2026, 1, 2, 3, 4, 5),
    'frozen': frozenset({'x', 'y'}),
}


def test_built_in_values_read_are_compared_by_value(db):
    store(db, **BUILT_INS)
    meter = StorageMeter(db)
    manager, root = open_root(db)
    assert dict(root['session']['pkg']) == BUILT_INS
    manager.commit()
    assert not meter.committed


def test_nested_changes_of_each_built_in_type_are_stored(db):
    store(db, **BUILT_INS)
    manager, root = open_root(db)
    pkg = root['session']['pkg']
    pkg['set'].add(5)
    pkg['nested']['b'][1].add(4)
    manager.commit()
    assert fresh_pkg(db)['set'] == spread_set() | {5}
    assert fresh_pkg(db)['nested']['b'] == [1, {2, 3, 4}]


def test_application_objects_compare_by_pickle(db):
    store(db, basket=Basket())
    meter = StorageMeter(db)
    manager, root = open_root(db)
    basket = root['session']['pkg']['basket']
    manager.commit()
    assert not meter.committed      # read, unchanged: nothing written
    manager, root = open_root(db)
    root['session']['pkg']['basket'].items.append('tea')
    manager.commit()
    assert fresh_pkg(db)['basket'].items == ['tea']
    assert basket.items == []


def test_only_the_key_changed_in_place_merges_with_concurrent_changes(db):
    store(db, cart=['apple'], tags=spread_set(), count=0)
    first, first_root = open_root(db)
    second, second_root = open_root(db)
    first_pkg = first_root['session']['pkg']
    first_pkg['cart'].append('pear')
    assert first_pkg['tags'] == spread_set()        # read, not changed
    second_root['session']['pkg']['tags'] = {'changed'}
    second.commit()
    first.commit()      # merged: each changed its own key
    assert fresh_pkg(db) == {
        'cart': ['apple', 'pear'], 'tags': {'changed'}, 'count': 0}


def test_the_same_key_changed_in_place_twice_conflicts(db):
    store(db, cart=['apple'])
    first, first_root = open_root(db)
    second, second_root = open_root(db)
    first_root['session']['pkg']['cart'].append('pear')
    second_root['session']['pkg']['cart'].append('plum')
    second.commit()
    with pytest.raises(ConflictError):
        first.commit()
    first.abort()
    assert fresh_pkg(db) == {'cart': ['apple', 'plum']}


def test_changed_still_stores_every_value_read(db):
    store(db, cart=['apple'])
    manager, root = open_root(db)
    pkg = root['session']['pkg']
    pkg['cart'].append('pear')
    pkg.changed()
    manager.commit()
    assert fresh_pkg(db) == {'cart': ['apple', 'pear']}


# -- Pyramid ----------------------------------------------------------------

@pytest.mark.parametrize('transactions', testing.PYRAMID_TRANSACTIONS)
def test_pyramid_session_changed_in_place_is_kept(
        registry, tmp_path, transactions):
    def add(request):
        request.session.setdefault('cart', []).append(request.GET['item'])
        return {}

    def show(request):
        return {'cart': request.session.get('cart')}

    def browser_of(db):
        return webtest.TestApp(testing.pyramid_app(
            db, {'/add': add, '/show': show}, transactions))

    directory = str(tmp_path)
    with testing.filestorage_db(directory) as db:
        browser = browser_of(db)
        for item in ('tea', 'milk', 'sugar'):
            browser.get('/add', {'item': item})
        meter = StorageMeter(db)
        assert browser.get('/show').json == {'cart': ['tea', 'milk', 'sugar']}
        assert not meter.committed
        cookies = dict(browser.cookies)
    with testing.filestorage_db(directory) as db:
        again = browser_of(db)
        for name, value in cookies.items():
            again.set_cookie(name, value)
        assert again.get('/show').json == {'cart': ['tea', 'milk', 'sugar']}


def test_values_of_a_closed_connection_can_still_be_read(db):
    store(db, cart=['apple'])
    manager, root = open_root(db)
    data = root['session']
    pkg = data['pkg']
    root._p_jar.close()
    assert pkg['cart'] == ['apple'] and 'pkg' in data
    assert dict(data.package('new')) == {}
