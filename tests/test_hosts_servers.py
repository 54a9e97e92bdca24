"""Each host in a real server, at the defaults: Beaker's middleware and
Flask under waitress (8 threads), ASGI (Starlette) under uvicorn; 8
browsers of one client id at once. The counter they all increment ends
exact (conflicts retried), the keys each changes alone are all kept
(merged), and a bad cookie is a fresh session, never an error.
"""
import json
import urllib.parse

import flask
import pytest
import webob
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.routing import Route

from zodbsession.asgi import SessionMiddleware as ASGISessionMiddleware
from zodbsession.beaker import SessionMiddleware as BeakerSessionMiddleware
from zodbsession.flask import ZODBSession
from zodbsession.testing.checks import check_one_client_in_threads
from zodbsession.testing.servers import uvicorn_serving
from zodbsession.testing.servers import waitress_serving
from zodbsession.testing.workers import SessionHTTPClient

THREADS = 8
ROUNDS = 25


def beaker_app(environ, start_response):
    request = webob.Request(environ)
    session = environ['beaker.session']
    if request.path_info == '/increment':
        session['n'] = session.get('n', 0) + 1
        session.save()
        reply = {'n': session['n']}
    elif request.path_info == '/set':
        session[request.GET['key']] = request.POST['value']
        session.save()
        reply = {}
    else:
        reply = {'data': dict(session) or None}
    body = json.dumps(reply).encode()
    start_response('200 OK', [('Content-Type', 'application/json'),
                              ('Content-Length', str(len(body)))])
    return [body]


def make_flask_app(directory):
    app = flask.Flask('hosts', instance_path=str(directory))
    ZODBSession(app)

    @app.post('/increment')
    def increment():
        flask.session['n'] = flask.session.get('n', 0) + 1
        return {'n': flask.session['n']}

    @app.post('/set')
    def set_key():
        flask.session[flask.request.args['key']] = flask.request.form['value']
        return {}

    @app.get('/read')
    def read():
        return {'data': dict(flask.session) or None}

    return app


async def asgi_increment(request):
    request.session['n'] = request.session.get('n', 0) + 1
    return JSONResponse({'n': request.session['n']})


async def asgi_set(request):
    form = urllib.parse.parse_qs((await request.body()).decode())
    request.session[request.query_params['key']] = form['value'][0]
    return JSONResponse({})


async def asgi_read(request):
    return JSONResponse({'data': dict(request.session) or None})


def make_starlette_app(directory):
    return Starlette(routes=[
        Route('/increment', asgi_increment, methods=['POST']),
        Route('/set', asgi_set, methods=['POST']),
        Route('/read', asgi_read),
    ], middleware=[Middleware(ASGISessionMiddleware,
                              db_uri=f'file://{directory}/sessions.fs')])


@pytest.fixture(params=['beaker', 'flask', 'asgi'])
def served(request, tmp_path):
    """The base URL of one host's application in its real server."""
    if request.param == 'beaker':
        app = BeakerSessionMiddleware(beaker_app, {
            'session.type': 'file', 'session.data_dir': str(tmp_path)})
        with waitress_serving(app, THREADS) as url:
            yield url
        app.db.close()
    elif request.param == 'flask':
        app = make_flask_app(tmp_path)
        with waitress_serving(app, THREADS) as url:
            yield url
        app.extensions['zodbsession'].db.close()
    else:
        app = make_starlette_app(tmp_path)
        with uvicorn_serving(app) as url:
            yield url


def test_one_client_in_eight_threads(served):
    check_one_client_in_threads(served, THREADS, ROUNDS)


@pytest.mark.parametrize('cookie', [
    'garbage', 'a' * 5000, '"\\"', 'x.y.z', '\u00e9t\u00e9'.encode(
        'utf-8').decode('latin-1')])
def test_a_bad_cookie_is_a_fresh_session(served, cookie):
    owner = SessionHTTPClient()
    owner.request(served, '/set?key=owner', {'value': 'frank'})
    name, value = next(iter(owner.cookies.items()))
    for sent in (cookie, value[:-3] + 'AAA'):
        stranger = SessionHTTPClient()
        stranger.cookies[name] = sent
        status, _, body = stranger.send(served, '/read')
        assert (status, json.loads(body)) == (200, {'data': None})
        stranger.request(served, '/set?key=mine', {'value': 'yes'})
        assert stranger.cookies[name] != sent
        assert stranger.request(served, '/read')['data'] == {'mine': 'yes'}
    assert owner.request(served, '/read')['data'] == {'owner': 'frank'}
