"""IRequestCookies for zope.publisher HTTP requests (optional).

Imported only when zope.publisher is installed, so that
``IClientId(zope.publisher.http.HTTPRequest(...))`` works as it does with
zope.session.
"""
import time
from email.utils import formatdate

from zope.component import adapter
from zope.interface import implementer
from zope.publisher.interfaces.http import IHTTPApplicationRequest
from zope.publisher.interfaces.http import IHTTPRequest

from zodbsession.interfaces import IClientIdManager
from zodbsession.interfaces import ICookieClientIdManager
from zodbsession.interfaces import IRequestCookies
from zodbsession.context import registry_for


@implementer(IRequestCookies)
@adapter(IHTTPRequest)
class PublisherCookies:

    def __init__(self, request):
        self.request = request

    @property
    def method(self):
        return self.request.method.upper()

    @property
    def application_path(self):
        return self.request.getApplicationURL(path_only=True) or '/'

    def get_cookie(self, name):
        cookie = self.request.response.getCookie(name)
        if cookie:
            return cookie['value']
        return self.get_request_cookie(name)

    def get_request_cookie(self, name):
        return IHTTPApplicationRequest(self.request).getCookies().get(name)

    def set_cookie(self, name, value, max_age=None, path='/', domain=None,
                   secure=False, httponly=True, samesite='Lax',
                   committed=False, expires=None):
        # The publisher builds the response after the transaction ends;
        # ``committed`` needs no bookkeeping here.
        options = {'path': path}
        if max_age is not None:
            options['max_age'] = max_age
            # zope.session's cookies carry Expires (its users' tests and
            # old clients read it); Max-Age wins where both are known.
            options['expires'] = expires or formatdate(
                time.time() + max_age, usegmt=True)
        if domain:
            options['domain'] = domain
        if secure:
            options['secure'] = True
        if httponly:
            options['HttpOnly'] = True
        if samesite:
            options['SameSite'] = samesite
        self.request.response.setCookie(name, value, **options)

    def delete_cookie(self, name, path='/', domain=None):
        options = {'path': path}
        if domain:
            options['domain'] = domain
        self.request.response.expireCookie(name, **options)

    def set_header(self, name, value, committed=False):
        self.request.response.setHeader(name, value)


def notifyVirtualHostChanged(event):
    """Set the client id cookie again when a request's virtual host
    changes (an IHTTPVirtualHostChangedEvent subscriber, as in
    zope.session), so that its path follows the new application URL."""
    request = IHTTPRequest(event.request, None)
    if request is None:
        return
    for _name, manager in registry_for(request).getUtilitiesFor(
            IClientIdManager):
        if not ICookieClientIdManager.providedBy(manager):
            continue
        if manager.thirdparty:
            continue    # the front-end server owns that cookie
        cookie = request.response.getCookie(manager.namespace)
        if cookie:
            manager.setRequestId(request, cookie['value'])
