"""zodbsession.asgi with Starlette, through httpx in process."""
import asyncio
import json
import time

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from zodbsession.asgi import SessionClosed
from zodbsession.asgi import SessionMiddleware

TIMEOUT = 30


class State:
    def __init__(self):
        self.runs = 0
        self.meeting = None     # an anyio.Event the first attempts wait for
        self.waiting = 0
        self.bodies = []


def make_app(db, state, **settings):
    async def read(request):
        return JSONResponse({'data': dict(request.session)})

    async def set_key(request):
        request.session[request.path_params['key']] = (
            request.path_params['value'])
        return JSONResponse({})

    async def add(request):
        """Adds the request body's number to the counter; the first
        attempts of two requests meet after reading it."""
        state.runs += 1
        body = await request.body()
        state.bodies.append(body)
        value = request.session.get('n', 0)
        if state.meeting is not None and state.runs <= 2:
            state.waiting += 1
            if state.waiting == 2:
                state.meeting.set()
            with anyio.fail_after(TIMEOUT):
                await state.meeting.wait()
        request.session['n'] = value + int(body)
        return JSONResponse({'n': request.session['n']})

    async def login(request):
        request.session['user'] = 'heidi'
        request.session.regenerate()
        return JSONResponse({})

    async def logout(request):
        request.session.invalidate()
        return JSONResponse({})

    async def answer(request):
        """Changes the session, then answers with the status asked for
        (and an X-Tm header, if asked)."""
        request.session['seen'] = request.path_params['status']
        headers = {}
        if 'x_tm' in request.query_params:
            headers['X-Tm'] = request.query_params['x_tm']
        return PlainTextResponse('answered', headers=headers,
                                 status_code=request.path_params['status'])

    async def unstorable(request):
        request.session['f'] = lambda: None
        return PlainTextResponse('the page of data that was not stored')

    return Starlette(routes=[
        Route('/read', read),
        Route('/set/{key}/{value}', set_key),
        Route('/add', add, methods=['POST']),
        Route('/login', login),
        Route('/logout', logout),
        Route('/unstorable', unstorable),
        Route('/answer/{status:int}', answer),
    ], middleware=[Middleware(SessionMiddleware, db=db, **settings)])


def client_for(app):
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
        base_url='http://testserver')


def run(coroutine):
    return asyncio.run(coroutine)


def test_the_session_is_stored_and_read_back(db):
    async def scenario():
        async with client_for(make_app(db, State())) as client:
            response = await client.get('/read')
            assert response.json() == {'data': {}}
            assert 'set-cookie' not in response.headers
            response = await client.get('/set/a/1')
            assert response.headers['set-cookie'].startswith('zodbsession=')
            await client.get('/set/b/2')
            return (await client.get('/read')).json()

    assert run(scenario()) == {'data': {'a': '1', 'b': '2'}}


@pytest.mark.parametrize('path, kept', [
    ('/answer/200', True), ('/answer/302', True), ('/answer/404', False),
    ('/answer/500', False), ('/answer/500?x_tm=commit', True),
    ('/answer/200?x_tm=abort', False)])
def test_the_response_decides_the_commit(db, path, kept):
    async def scenario():
        async with client_for(make_app(db, State())) as client:
            await client.get('/set/a/1')
            response = await client.get(path)
            assert response.text == 'answered'
            return (await client.get('/read')).json()['data']

    assert ('seen' in run(scenario())) is kept


def test_a_new_client_answered_with_an_error_gets_no_cookie(db):
    async def scenario():
        async with client_for(make_app(db, State())) as client:
            await client.get('/read')       # the middleware is ready
            before = db.storage.lastTransaction()
            response = await client.get('/answer/500')
            assert db.storage.lastTransaction() == before
            return response.status_code, response.headers.get('set-cookie')

    assert run(scenario()) == (500, None)


def test_a_request_without_a_cookie_touches_no_storage(db):
    async def scenario():
        async with client_for(make_app(db, State())) as client:
            await client.get('/read')       # the middleware is ready
            db.close()                      # any storage access fails now
            response = await client.get('/read')
            return response.status_code, response.json()

    assert run(scenario()) == (200, {'data': {}})


def test_a_change_after_the_response_started_raises():
    async def app(scope, receive, send):
        await send({'type': 'http.response.start', 'status': 200,
                    'headers': []})
        scope['session']['late'] = True

    async def scenario(db):
        middleware = SessionMiddleware(app, db=db)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(
                app=middleware), base_url='http://testserver') as client:
            await client.get('/')

    import tempfile
    from zodbsession.testing import filestorage_db
    with tempfile.TemporaryDirectory() as directory, filestorage_db(
            directory) as db:
        with pytest.raises(SessionClosed, match='after the response started'):
            run(scenario(db))


def test_a_failed_commit_is_an_error_not_the_page(db):
    async def scenario():
        async with client_for(make_app(db, State())) as client:
            await client.get('/set/a/1')
            response = await client.get('/unstorable')
            assert response.status_code == 500
            assert 'not stored' not in response.text
            assert 'set-cookie' not in response.headers
            return (await client.get('/read')).json()

    assert run(scenario()) == {'data': {'a': '1'}}


def test_same_key_conflicts_rerun_the_app_with_the_body(db):
    state = State()

    async def scenario():
        async with client_for(make_app(db, state)) as client:
            await client.get('/set/a/1')
            state.meeting = anyio.Event()
            replies = await asyncio.gather(
                client.post('/add', content=b'5'),
                client.post('/add', content=b'7'))
            return ([reply.status_code for reply in replies],
                    (await client.get('/read')).json())

    statuses, read = run(scenario())
    assert statuses == [200, 200]
    assert read == {'data': {'a': '1', 'n': 12}}
    # One request ran again, with the body it had read.
    assert state.runs == 3
    assert sorted(state.bodies) == [b'5', b'5', b'7'] or sorted(
        state.bodies) == [b'5', b'7', b'7']


def test_a_conflict_out_of_budget_is_a_503(db):
    state = State()

    async def scenario():
        app = make_app(db, state, retry_timeout=0)
        async with client_for(app) as client:
            await client.get('/set/a/1')
            state.meeting = anyio.Event()
            replies = await asyncio.gather(
                client.post('/add', content=b'1'),
                client.post('/add', content=b'1'))
            return sorted((reply.status_code, reply.headers.get(
                'retry-after'), 'set-cookie' in reply.headers)
                for reply in replies)

    assert run(scenario()) == [(200, None, False), (503, '5', False)]


def test_different_keys_merge_without_a_rerun(db):
    state = State()

    async def scenario():
        async with client_for(make_app(db, state)) as client:
            await client.get('/set/a/1')
            await asyncio.gather(*[client.get(f'/set/k{n}/{n}')
                                   for n in range(10)])
            return (await client.get('/read')).json()['data']

    assert run(scenario()) == dict({f'k{n}': str(n) for n in range(10)},
                                   a='1')


def test_regenerate_and_invalidate(db):
    async def scenario():
        async with client_for(make_app(db, State())) as client:
            await client.get('/set/a/1')
            before = client.cookies['zodbsession']
            await client.get('/login')
            after = client.cookies['zodbsession']
            assert after != before
            assert (await client.get('/read')).json()['data'] == {
                'a': '1', 'user': 'heidi'}
            await client.get('/logout')
            assert client.cookies['zodbsession'] != after
            return (await client.get('/read')).json()['data']

    assert run(scenario()) == {}


@pytest.mark.parametrize('cookie', ['garbage', 'x' * 5000, '"\\"',
                                    'a.b.c'])
def test_bad_cookies_are_absent(db, cookie):
    async def scenario():
        async with client_for(make_app(db, State())) as client:
            response = await client.get(
                '/read', headers={'cookie': f'zodbsession={cookie}'})
            return response.status_code, json.loads(response.text)

    assert run(scenario()) == (200, {'data': {}})


def test_a_websockets_session_is_read_only(db):
    from starlette.routing import WebSocketRoute
    from starlette.testclient import TestClient

    async def talk(websocket):
        await websocket.accept()
        await websocket.send_json(dict(websocket.session))
        try:
            websocket.session['from_socket'] = True
        except SessionClosed as error:
            await websocket.send_text(str(error))
        await websocket.close()

    app = make_app(db, State())
    app.router.routes.append(WebSocketRoute('/talk', talk))
    with TestClient(app) as client:
        client.get('/set/a/1')
        with client.websocket_connect('/talk') as websocket:
            assert websocket.receive_json() == {'a': '1'}
            assert 'read-only' in websocket.receive_text()
        assert client.get('/read').json() == {'data': {'a': '1'}}


def test_a_bad_setting_fails_when_the_middleware_is_made():
    async def app(scope, receive, send):
        pass

    with pytest.raises(ValueError, match='sameSite'):
        SessionMiddleware(app, sameSite='Sometimes')
    with pytest.raises(TypeError, match='timeouts'):
        SessionMiddleware(app, timeouts=5)


# Seconds a restarted ZEO server may take to be found again by its client.
RECONNECT_BOUND = 10


def test_an_unreachable_storage_is_a_503(tmp_path):
    from zodbsession.db import open_database
    from zodbsession.testing.zeo import ZEOServer
    server = ZEOServer(str(tmp_path))
    server.start()
    db = open_database(server.uri + '?wait_timeout=1')
    try:
        async def scenario():
            async with client_for(make_app(db, State())) as client:
                await client.get('/set/a/1')
                server.stop()
                down = await client.get('/set/b/2')
                stranger = await client.get(
                    '/read', headers={'cookie': ''})
                server.start()
                # The ZEO client reconnects by itself: requests in the
                # meantime still get a 503, and within the bound a read
                # finds what was stored before the outage.
                deadline = time.monotonic() + RECONNECT_BOUND
                back = await client.get('/read')
                while back.status_code == 503 and time.monotonic() < deadline:
                    await anyio.sleep(0.05)
                    back = await client.get('/read')
                return (down.status_code, down.headers.get('retry-after'),
                        'set-cookie' in down.headers, stranger.status_code,
                        back.status_code, back.json())

        assert run(scenario()) == (503, '5', False, 200,
                                   200, {'data': {'a': '1'}})
    finally:
        db.close()
        server.stop()


def test_starlettes_arguments_keep_working(db):
    async def scenario():
        app = make_app(db, State(), secret_key='s' * 32,
                       session_cookie='sid', max_age=600, same_site='strict',
                       https_only=True, path='/shop')
        async with client_for(app) as client:
            return (await client.get('/set/a/1')).headers['set-cookie']

    cookie = run(scenario())
    assert cookie.startswith('sid=')
    for part in ('Max-Age=600', 'SameSite=strict', 'secure', 'Path=/shop'):
        assert part in cookie
    with pytest.raises(TypeError, match='same setting'):
        SessionMiddleware(make_app(db, State()), db=db, secret_key='s' * 32,
                          secret='t' * 32)


def test_turns_on_the_event_loop():
    from zodbsession.asgi.turns import AsyncClientTurns
    turns = AsyncClientTurns()
    events = []

    async def request(name, contending, hold, timeout=TIMEOUT):
        async with turns.turn('client', contending, timeout):
            events.append(f'{name} in')
            await anyio.sleep(hold)
            events.append(f'{name} out')

    async def scenario():
        # No turns are being taken: requests run side by side.
        async with anyio.create_task_group() as group:
            group.start_soon(request, 'a', False, 0.01)
            group.start_soon(request, 'b', False, 0.01)
        side_by_side = events[:2] == ['a in', 'b in']
        events.clear()
        # After a conflict, a request takes the turn, and the client's
        # others wait for it (also one that did not conflict) ...
        async with anyio.create_task_group() as group:
            group.start_soon(request, 'c', True, 0.01)
            await anyio.sleep(0)
            group.start_soon(request, 'd', False, 0)
        alone = events == ['c in', 'c out', 'd in', 'd out']
        events.clear()
        # ... but no longer than their budget.
        async with anyio.create_task_group() as group:
            group.start_soon(request, 'e', True, 0.2)
            await anyio.sleep(0)
            group.start_soon(request, 'f', True, 0, 0.01)
        return side_by_side, alone, events[:2], turns.waiting()

    assert run(scenario()) == (True, True, ['e in', 'f in'], {})


def test_a_cookie_container_package_refreshes_its_cookie(db):
    """A package kept in a cookie: a read that refreshes its expiry (once
    per resolution) sends the refreshed cookie though nothing changed."""
    from zodbsession import clock
    from zodbsession.cookiecontainer import CookieSessionDataContainer
    from zodbsession.site import change_site
    from zodbsession.site import ensure_site
    ensure_site(db)
    change_site(db, lambda site: site.register_container(
        'asgi.session', CookieSessionDataContainer(
            secret='c' * 32, timeout=600, resolution=60)))
    start = clock.ManualClock(1_000_000)

    async def scenario():
        async with client_for(make_app(db, State())) as client:
            await client.get('/set/a/1')
            data_cookie = client.cookies['zodbsession_data']
            start.advance(120)
            response = await client.get('/read')
            return (response.json(), 'zodbsession_data=' in
                    response.headers.get('set-cookie', ''),
                    client.cookies['zodbsession_data'] != data_cookie)

    with clock.use_clock(start):
        assert run(scenario()) == ({'data': {'a': '1'}}, True, True)


def test_maintenance_runs_under_asgi_as_under_every_host(db):
    """Sweeping and packing on a schedule start with the middleware's
    database; pack_interval is checked at construction."""
    from zodbsession.maintenance import maintenance_of

    async def scenario():
        async with client_for(make_app(db, State(), pack_interval=3600)) as (
                client):
            await client.get('/read')

    run(scenario())
    assert maintenance_of(db).pack_interval == 3600
    with pytest.raises(ValueError, match='pack_interval'):
        SessionMiddleware(None, db=db, pack_interval=-1)
    # Sent as "Retry-After: -5": not HTTP's delay-seconds.
    with pytest.raises(ValueError, match='retry_after must be a whole'):
        SessionMiddleware(None, db=db, retry_after=-5)


def test_a_request_leaves_nothing_of_ours_in_reference_cycles(db):
    # Each transaction's context lets go of what it made, so reference
    # counting frees the request's objects: no collector pass is needed
    # for them.
    from zodbsession.testing.garbage import cycles_left_by
    app = make_app(db, State())

    def requests(count):
        async def scenario():
            async with client_for(app) as client:
                client.cookies.update(jar)
                for _ in range(count):
                    response = await client.get('/set/a/1')
                    assert response.status_code == 200
                jar.update(client.cookies)
        run(scenario())

    jar = {}
    requests(1)
    assert cycles_left_by(lambda: requests(3)) == []


def test_a_bad_starlette_argument_is_named_as_given():
    with pytest.raises(ValueError, match='at least 16 bytes') as raised:
        SessionMiddleware(None, secret_key='!secret')
    assert raised.value.__notes__ == [
        "Starlette's arguments given: secret_key is 'secret'"]
    assert '!secret' not in str(raised.value)
    with pytest.raises(ValueError, match="'sameSite'") as raised:
        SessionMiddleware(None, same_site='sideways', path='/')
    assert raised.value.__notes__ == [
        "Starlette's arguments given: same_site is 'sameSite'"]
