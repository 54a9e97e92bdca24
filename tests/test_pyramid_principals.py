"""Pyramid: ``zodbsession.pyramid.remember`` files the session under the
principal and returns the security policy's headers; one browser ends
the other's session; requests are counted for the statistics."""
import webtest
from pyramid.config import Configurator
from pyramid.response import Response

from zodbsession.principals import revoke_sessions
from zodbsession.procstats import counters
from zodbsession.pyramid import remember
from zodbsession.pyramid import session_factory
from zodbsession.testing import filestorage_db


class HeaderPolicy:
    """A security policy whose ``remember`` sends one header."""

    def identity(self, request):
        return None

    def authenticated_userid(self, request):
        return request.session.get('user')

    def permits(self, request, context, permission):
        return True

    def remember(self, request, userid, **kw):
        return [('X-Remembered', f'{userid} {kw.get("max_age")}')]

    def forget(self, request, **kw):
        return []


def login(request):
    request.session.regenerate()
    user = request.params['user']
    request.session['user'] = user
    headers = remember(request, user, max_age=60)
    return Response('welcome', headerlist=[
        ('Content-Type', 'text/plain; charset=utf-8'), *headers])


def whoami(request):
    return Response(request.session.get('user', 'stranger'))


def revoke(request):
    count = revoke_sessions(request, request.session['user'],
                            keep_current=True)
    return Response(str(count))


def make_app(db):
    with Configurator() as config:
        config.set_session_factory(session_factory(db=db))
        config.set_security_policy(HeaderPolicy())
        config.include('zodbsession.pyramid')
        for name, view in (('login', login), ('whoami', whoami),
                           ('revoke', revoke)):
            config.add_route(name, f'/{name}')
            config.add_view(view, route_name=name)
        return config.make_wsgi_app()


def test_remember_files_the_session_and_returns_the_headers(tmp_path):
    with filestorage_db(str(tmp_path)) as db:
        wsgi = make_app(db)
        laptop, phone = webtest.TestApp(wsgi), webtest.TestApp(wsgi)
        before = counters.figures()['requests']
        response = laptop.get('/login?user=ada')
        assert response.headers['X-Remembered'] == 'ada 60'
        phone.get('/login?user=ada')
        assert phone.get('/whoami').text == 'ada'
        assert laptop.get('/revoke').text == '1'
        assert phone.get('/whoami').text == 'stranger'
        assert laptop.get('/whoami').text == 'ada'
        assert counters.figures()['requests'] - before == 6
