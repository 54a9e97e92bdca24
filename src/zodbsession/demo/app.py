"""The demo's routing, CSRF check, and its set-up on a database."""
from webob import Request

from zodbsession.container import PersistentSessionDataContainer
from zodbsession.demo import csrf
from zodbsession.demo import views
from zodbsession.hosting.sitechanges import change_site
from zodbsession.hosting.wsgi import SESSION_KEY
from zodbsession.hosting.wsgi import SessionMiddleware

# The cart outlives the rest of the session: a week, touched hourly.
CART_TIMEOUT = 7 * 24 * 3600
CART_RESOLUTION = 3600

ROUTES = {
    '/': {'GET': views.home},
    '/session.json': {'GET': views.state},
    '/healthz': {'GET': views.healthz},
    '/cart/add': {'POST': views.cart_add},
    '/cart/remove': {'POST': views.cart_remove},
    '/cart/clear': {'POST': views.cart_clear},
    '/prefs': {'POST': views.save_prefs},
    '/login': {'POST': views.login},
    '/logout': {'POST': views.logout},
    '/logout-others': {'POST': views.logout_others},
}


class DemoApp:
    """The WSGI application; it needs SessionMiddleware around it."""

    def __call__(self, environ, start_response):
        request = Request(environ)
        response = self.respond(request)
        return response(environ, start_response)

    def respond(self, request):
        if not request.path_info:
            # Mounted at /prefix and asked for /prefix: the page's relative
            # form actions need the trailing slash.
            return views.redirect_home(request)
        methods = ROUTES.get(request.path_info)
        if methods is None:
            return views.error_page(request, 404, 'Not found',
                                    f'There is no page {request.path_info}.')
        method = 'GET' if request.method == 'HEAD' else request.method
        view = methods.get(method)
        if view is None:
            response = views.error_page(
                request, 405, 'Method not allowed',
                f'{request.path_info} takes {", ".join(methods)} only.')
            response.allow = sorted(methods)
            return response
        if view is views.healthz:
            return view(request)
        if SESSION_KEY not in request.environ:
            raise RuntimeError(
                'the demo needs zodbsession.wsgi.SessionMiddleware around'
                ' it (use zodbsession.demo.make_app)')
        if method == 'POST' and not csrf.is_valid(
                views.session_of(request), request.POST.get(csrf.FIELD)):
            return views.error_page(
                request, 400, 'Bad request',
                'The form is missing its CSRF token or has a stale one:'
                ' reload the page and try again.')
        try:
            return view(request)
        except views.BadRequest as exc:
            return views.error_page(request, 400, 'Bad request', str(exc))


def ensure_cart_container(db):
    """Give ``demo.cart`` a container of its own, once per database."""
    def register(site):
        if views.CART not in site.containers():
            site.register_container(views.CART, PersistentSessionDataContainer(
                timeout=CART_TIMEOUT, resolution=CART_RESOLUTION))
    change_site(db, register)


def make_app(db, **settings):
    """The demo wrapped in SessionMiddleware on the open database ``db``.

    ``settings`` go to SessionMiddleware (``retries``, cookie and
    container settings).
    """
    app = SessionMiddleware(DemoApp(), db=db, **settings)
    ensure_cart_container(db)
    return app
