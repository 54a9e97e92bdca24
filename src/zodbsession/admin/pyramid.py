"""The metrics as a Pyramid view:
``config.include('zodbsession.admin.pyramid')`` after
``config.include('zodbsession.pyramid')``.

Settings::

    zodbsession.metrics_path  = /metrics   (the route's path)
    zodbsession.metrics_token = (none: anyone who reaches the path may
                                 scrape; set one and scrape with
                                 Authorization: Bearer TOKEN)

The database is the session factory's. ``metrics_view`` may also be
added to a route of the application's own choosing.
"""
from pyramid.interfaces import ISessionFactory
from pyramid.response import Response

from zodbsession.admin.auth import bearer_matches
from zodbsession.admin.auth import check_token
from zodbsession.admin.metrics import render

ROUTE_NAME = 'zodbsession.metrics'


def metrics_view(request):
    """The metrics of the session factory's database."""
    settings = request.registry.settings or {}
    token = settings.get('zodbsession.metrics_token') or None
    secret = check_token(token, 'zodbsession.metrics_token',
                         required=False)
    if secret is not None and not bearer_matches(request.environ, secret):
        response = Response('401 Unauthorized: send Authorization: Bearer'
                            ' TOKEN\n', status=401, content_type='text/plain',
                            charset='utf-8')
        response.headers['WWW-Authenticate'] = 'Bearer realm="zodbsession"'
        return response
    factory = request.registry.getUtility(ISessionFactory)
    content_type, body = render(factory.db)
    response = Response(body=body)
    response.headers['Content-Type'] = content_type
    response.cache_control.no_store = True
    return response


def includeme(config):
    settings = config.get_settings() or {}
    token = settings.get('zodbsession.metrics_token') or None
    # A bad token stops the application from starting, not each scrape.
    check_token(token, 'zodbsession.metrics_token', required=False)
    config.add_route(ROUTE_NAME,
                     settings.get('zodbsession.metrics_path', '/metrics'))
    config.add_view(metrics_view, route_name=ROUTE_NAME,
                    request_method=('GET', 'HEAD'))
