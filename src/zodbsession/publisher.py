"""IRequestCookies for zope.publisher HTTP requests (optional).

Imported only when zope.publisher is installed, so that
``IClientId(zope.publisher.http.HTTPRequest(...))`` works as it does with
zope.session.
"""
from zope.component import adapter
from zope.interface import implementer
from zope.publisher.interfaces.http import IHTTPApplicationRequest
from zope.publisher.interfaces.http import IHTTPRequest

from zodbsession.interfaces import IRequestCookies


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
                   committed=False):
        # The publisher builds the response after the transaction ends;
        # ``committed`` needs no bookkeeping here.
        options = {'path': path}
        if max_age is not None:
            options['max_age'] = max_age
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
