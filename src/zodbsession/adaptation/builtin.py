"""The request adapters zodbsession finds without being registered.

zope.session's users register only what zope.session needs (a client id
manager, containers, perhaps the ClientId and Session adapters); they
never heard of IRequestCookies. So the kinds of request zodbsession knows
(its own WSGI request, WebOb and Pyramid requests, zope.publisher
requests)
are answered from this table when the site's registry has no adapter of
its own: a registered adapter still wins.
"""
from zope.interface import implementedBy
from zope.interface import providedBy
from zope.interface.adapter import AdapterRegistry

from zodbsession.context import use_builtin_cookies
from zodbsession.interfaces import IRequestCookies

_table = None


def _build():
    from zodbsession.adaptation.environ import EnvironCookies
    from zodbsession.adaptation.environ import WSGIRequest
    table = AdapterRegistry()
    table.register([implementedBy(WSGIRequest)], IRequestCookies, '',
                   EnvironCookies)
    try:
        from webob.request import BaseRequest
    except ImportError:  # pragma: no cover - WebOb is a dependency
        pass
    else:
        table.register([implementedBy(BaseRequest)], IRequestCookies, '',
                       EnvironCookies)
    try:
        from pyramid.interfaces import IRequest as IPyramidRequest
    except ImportError:
        pass    # Pyramid is optional
    else:
        # Every Pyramid request, pyramid.testing.DummyRequest included.
        table.register([IPyramidRequest], IRequestCookies, '',
                       EnvironCookies)
    try:
        from zope.publisher.interfaces.http import IHTTPRequest

        from zodbsession.adaptation.publisher import PublisherCookies
    except ImportError:
        pass    # zope.publisher is optional
    else:
        table.register([IHTTPRequest], IRequestCookies, '',
                       PublisherCookies)
    return table


def request_cookies(request):
    """The built-in IRequestCookies adapter of ``request``, or None."""
    global _table
    if _table is None:
        _table = _build()
    factory = _table.lookup((providedBy(request),), IRequestCookies)
    return None if factory is None else factory(request)


use_builtin_cookies(request_cookies)
