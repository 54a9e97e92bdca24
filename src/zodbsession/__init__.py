"""zodbsession: namespaced, transactional server-side sessions on ZODB.

The public names of zope.session 6.0 are all here, so zope.session code
switches by changing its imports.
"""
# The one place the version is written: setup.py reads it from here.
__version__ = '0.1.0.dev0'

from zodbsession.clientid import ClientId
from zodbsession.clientid import CookieClientIdManager
from zodbsession.clientid import MissingClientIdException
from zodbsession.container import PersistentSessionDataContainer
from zodbsession.cookiecontainer import CookieSessionDataContainer
from zodbsession.cookiecontainer import SessionTooLarge
from zodbsession.data import SessionData
from zodbsession.data import SessionPkgData
from zodbsession.interfaces import IClientId
from zodbsession.interfaces import IClientIdManager
from zodbsession.interfaces import ICookieClientIdManager
from zodbsession.interfaces import ICookieSessionDataContainer
from zodbsession.interfaces import IPendingSessions
from zodbsession.interfaces import IRequestBoundContainer
from zodbsession.interfaces import IRequestCookies
from zodbsession.interfaces import IResponseCaching
from zodbsession.interfaces import ISessionCookies
from zodbsession.interfaces import ISession
from zodbsession.interfaces import ISessionData
from zodbsession.interfaces import ISessionClientIdManager
from zodbsession.interfaces import ISessionDataContainer
from zodbsession.interfaces import ISessionDataCreated
from zodbsession.interfaces import ISessionLifecycle
from zodbsession.interfaces import ISessionPkgData
from zodbsession.ram import RAMSessionDataContainer
from zodbsession.adaptation.registration import register_adapters
from zodbsession.adaptation.registration import register_session_utilities
from zodbsession.adaptation.environ import WSGIRequest
from zodbsession.session import Session
from zodbsession.session import expire_session
from zodbsession.session import get_session
from zodbsession.validated import InvalidSetting

try:
    from zodbsession.adaptation.publisher import notifyVirtualHostChanged
except ImportError:     # zope.publisher is optional
    pass

__all__ = [
    'ClientId', 'CookieClientIdManager', 'MissingClientIdException',
    'PersistentSessionDataContainer', 'RAMSessionDataContainer',
    'CookieSessionDataContainer', 'SessionTooLarge', 'get_session',
    'expire_session', 'IRequestBoundContainer', 'ISessionLifecycle',
    'SessionData', 'SessionPkgData', 'Session', 'WSGIRequest',
    'IClientId', 'IClientIdManager', 'ICookieClientIdManager',
    'ICookieSessionDataContainer',
    'IPendingSessions', 'IRequestCookies', 'IResponseCaching', 'ISessionCookies', 'ISession', 'ISessionData', 'ISessionDataContainer',
    'ISessionPkgData', 'register_adapters', 'register_session_utilities',
    'ISessionClientIdManager', 'ISessionDataCreated', 'InvalidSetting',
]
