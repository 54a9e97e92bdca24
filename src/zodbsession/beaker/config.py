"""Beaker's session options, mapped onto zodbsession's settings.

Every option of Beaker's sessions either maps (``type``, ``timeout``,
``cookie_expires``, ``key``, ``secret``, ``validate_key``,
``encrypt_key``, ``httponly``, ``secure``, ``samesite``,
``cookie_domain``, ``cookie_path``, ``auto``, ``data_dir``), has nothing
left to do here (``IGNORED``, each with the reason), or fails at once
with a message saying what to use instead (``REFUSED``): a Beaker
configuration never half works.
"""
import datetime
import hashlib
import hmac
import re

from zodbsession.hosting.db import DEFAULT_URI
from zodbsession.expiry import resolution_for
from zodbsession.signing import normalize_secrets
from zodbsession.validated import InvalidSetting

DEFAULT_PKG_ID = 'beaker.session'
DEFAULT_ENVIRON_KEY = 'beaker.session'
# Beaker's default cookie name is 'beaker.session.id'; zodbsession's
# cookie names are letters, digits and '_' (see ``cookie_name``).
DEFAULT_KEY = 'beaker.session.id'

_PREFIXES = ('beaker.session.', 'session.')

_TRUE = {'1', 'true', 'yes', 'on'}
_FALSE = {'0', 'false', 'no', 'off'}

SHARED_STORE = ("a zodbsession database URI: session.db_uri ="
                " zeo://host:port (ZEO) or postgres://user@host/dbname"
                " (RelStorage)")

# Options with nothing left to do, and why.
IGNORED = {
    'lock_dir': 'no file locks: transactions keep concurrent requests apart',
    'invalidate_corrupt': 'a bad cookie is always treated as absent',
    'save_accessed_time': 'the last access is written once per resolution',
    'data_serializer': 'values are pickled one by one (JSON in cookies)',
    'crypto_type': 'cookies are encrypted with AES-256-GCM (cryptography)',
    'log_file': 'zodbsession logs through the logging module',
    'webtest_varname': 'tests read the session through zodbsession.testing',
    'type_namespace': 'each package id has its own namespace',
}

# Options that cannot map, and what to use instead.
REFUSED = {
    'url': SHARED_STORE,
    'memcache_module': SHARED_STORE,
    'memcache_server_weights': SHARED_STORE,
    'memcache_binary': SHARED_STORE,
    'memcache_behaviors': SHARED_STORE,
    'namespace_class': 'zodbsession chooses the container per package id'
                       ' (zodbsession.site.change_site)',
    'cookie_only': "session.type = cookie",
    'id': 'the client id comes from the cookie, signed',
}

_BOOLEAN = ('auto', 'httponly', 'secure')
_TEXT = ('type', 'data_dir', 'key', 'secret', 'validate_key', 'encrypt_key',
         'samesite', 'cookie_domain', 'cookie_path', 'db_uri', 'pkg_id',
         'environ_key')
_HOSTING = ('retries', 'retry_timeout', 'retry_after')
MAPPED = _BOOLEAN + _TEXT + _HOSTING + ('timeout', 'cookie_expires')


def beaker_options(config=None, kwargs=None):
    """{option: value} of the ``session.*`` (or ``beaker.session.*``)
    entries of ``config`` and ``kwargs``; other entries are the
    application's and left alone, as Beaker does."""
    options = {}
    for source in (config or {}, kwargs or {}):
        for name, value in source.items():
            for prefix in _PREFIXES:
                if name.startswith(prefix):
                    options[name[len(prefix):]] = value
                    break
    return options


class BeakerConfig:
    """What a Beaker configuration asks of zodbsession.

    ``db_uri``: the database (None: the caller's ``db``); ``settings``:
    the site's (client id cookie, unnamed container); ``container``:
    ``(make, matches)`` for the package's own container, or None when its
    data lives in the unnamed (persistent) container; ``pkg_id``,
    ``auto``, ``environ_key``; ``hosting``: the middleware's retry
    settings.
    """

    def __init__(self, options):
        # The type first: what it says about a store outweighs its
        # options (an ext:* type's url, say).
        self.type = _text(options, 'type') or 'memory'
        if self.type.startswith('ext:'):
            raise InvalidSetting(
                'session.type', self.type, 'one of memory, file, dbm,'
                f' cookie; for a store shared by processes use {SHARED_STORE}')
        for name, value in options.items():
            _check_known(name, value)
        self.options = options
        self.pkg_id = _text(options, 'pkg_id') or DEFAULT_PKG_ID
        self.environ_key = (_text(options, 'environ_key')
                            or DEFAULT_ENVIRON_KEY)
        self.auto = _boolean(options, 'auto', False)
        self.timeout = _timeout(options)
        self.settings = self._site_settings(options)
        self.hosting = {name: options[name] for name in _HOSTING
                        if name in options}
        self.db_uri = _text(options, 'db_uri')
        self.container = None
        self._map_type(options)

    def _site_settings(self, options):
        settings = {'namespace': cookie_name(_text(options, 'key')
                                             or DEFAULT_KEY)}
        if self.timeout is not None:
            settings['timeout'] = self.timeout
            settings['resolution'] = resolution_for(self.timeout)
        if 'cookie_expires' in options:
            settings['cookieLifetime'] = _cookie_lifetime(
                options['cookie_expires'])
        secret = _text(options, 'secret')
        if secret is not None:
            _check_key('secret', secret)
            settings['secret'] = secret
        for option, setting in (('httponly', 'httpOnly'),
                                ('secure', 'secure')):
            if option in options:
                settings[setting] = _boolean(options, option, None)
        samesite = _text(options, 'samesite')
        if samesite is not None:
            settings['sameSite'] = _samesite(samesite)
        for option, setting in (('cookie_domain', 'domain'),
                                ('cookie_path', 'path')):
            value = _text(options, option)
            if value is not None:
                settings[setting] = value
        return settings

    def _map_type(self, options):
        kind = self.type
        if kind in ('file', 'dbm'):
            if self.db_uri is None:
                data_dir = _text(options, 'data_dir')
                self.db_uri = (f'file://{data_dir}/sessions.fs' if data_dir
                               else DEFAULT_URI)
            return
        if kind == 'memory':
            self.db_uri = self.db_uri or 'memory://'
            self.container = _ram_container(self.timeout)
            return
        if kind == 'cookie':
            self.db_uri = self.db_uri or 'memory://'
            self._map_cookie(options)
            return
        raise InvalidSetting(
            'session.type', kind, 'one of memory, file, dbm, cookie (or'
            f' ext:* stores, which map to {SHARED_STORE})')

    def _map_cookie(self, options):
        validate_key = _text(options, 'validate_key')
        if validate_key is None:
            raise InvalidSetting(
                'session.validate_key', None, 'a key of at least 16 bytes:'
                ' session.type = cookie signs the cookie with it')
        _check_key('validate_key', validate_key)
        encrypt_key = _text(options, 'encrypt_key')
        if encrypt_key is not None:
            _check_key('encrypt_key', encrypt_key)
        if 'secret' not in self.settings:
            # Processes that share the keys must agree on the client id
            # too: it is signed with a key derived from validate_key.
            self.settings['secret'] = _derived(validate_key, 'client id')
        self.container = _cookie_container(
            validate_key, encrypt_key, self.settings['namespace'],
            self.timeout)


def _check_known(name, value):
    if name in MAPPED or name in IGNORED:
        return
    instead = REFUSED.get(name)
    if instead is None and name.startswith('memcache'):
        instead = SHARED_STORE
    if instead is not None:
        raise InvalidSetting(f'session.{name}', value,
                             f'zodbsession has no such option; use {instead}'
                             ' instead')
    raise InvalidSetting(
        f'session.{name}', value, 'not a Beaker session option zodbsession'
        f' knows; it maps {", ".join(sorted(MAPPED))}')


def _text(options, name):
    value = options.get(name)
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode('utf-8')
    if not isinstance(value, str):
        raise InvalidSetting(f'session.{name}', value, 'expected text')
    return value.strip() if value.strip() else None


def _boolean(options, name, default):
    value = options.get(name, default)
    if isinstance(value, str):
        if value.strip().lower() in _TRUE:
            return True
        if value.strip().lower() in _FALSE:
            return False
    if value is None or isinstance(value, bool):
        return value
    raise InvalidSetting(f'session.{name}', value, 'expected true or false')


def _timeout(options):
    value = options.get('timeout')
    if value is None or (isinstance(value, str) and value.strip().lower()
                         in ('', 'none')):
        return None
    try:
        seconds = int(value)
    except (TypeError, ValueError):
        seconds = -1
    if isinstance(value, bool) or seconds < 0:
        raise InvalidSetting('session.timeout', value,
                             'expected whole seconds >= 0')
    return seconds




def _cookie_lifetime(value):
    """Beaker's ``cookie_expires``: True, a browser-session cookie; False,
    one that never expires; a number of seconds or a timedelta."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return None
        if text in _FALSE:
            return 0
        value = text
    if value is True:
        return None
    if value is False:
        return 0
    if isinstance(value, datetime.timedelta):
        return max(1, int(value.total_seconds()))
    if isinstance(value, datetime.datetime):
        raise InvalidSetting(
            'session.cookie_expires', value, 'seconds or a timedelta (a'
            ' fixed date would end every session at once; zodbsession'
            ' cookies last a number of seconds from when they are set)')
    try:
        seconds = int(value)
    except (TypeError, ValueError):
        seconds = -1
    if seconds <= 0:
        raise InvalidSetting('session.cookie_expires', value,
                             'true, false, seconds > 0 or a timedelta')
    return seconds


def _samesite(value):
    for choice in ('Lax', 'Strict', 'None'):
        if value.lower() == choice.lower():
            return choice
    raise InvalidSetting('session.samesite', value, 'Lax, Strict or None')


def cookie_name(key):
    """A cookie name zodbsession accepts for Beaker's ``key``: characters
    other than letters, digits and '_' become '_' (so Beaker's default
    'beaker.session.id' becomes 'beaker_session_id'), at most 30."""
    name = re.sub(r'[^A-Za-z0-9_]', '_', key)[:30]
    if not name.strip('_'):
        raise InvalidSetting('session.key', key,
                             'a cookie name with a letter or digit')
    return name


def _check_key(option, key):
    try:
        normalize_secrets(key, f'session.{option}')
    except (TypeError, ValueError):
        # The key itself stays out of the message (and of logs).
        raise InvalidSetting(
            f'session.{option}', f'<a key of {len(key.encode())} bytes>',
            'a key of at least 16 bytes (Beaker accepted shorter ones;'
            ' generate one with secrets.token_urlsafe(32))') from None


def _derived(key, purpose):
    """A key for ``purpose``, derived from one of Beaker's keys (text of
    any length >= 16 bytes), so one configured key serves several uses."""
    return hmac.new(key.encode('utf-8'),
                    b'zodbsession.beaker ' + purpose.encode('ascii'),
                    hashlib.sha256).hexdigest()


def _ram_container(timeout):
    from zodbsession.ram import RAMSessionDataContainer

    def make():
        if timeout is None:
            return RAMSessionDataContainer()
        return RAMSessionDataContainer(timeout=timeout,
                                       resolution=resolution_for(timeout))

    def matches(container):
        return (isinstance(container, RAMSessionDataContainer)
                and (timeout is None or container.timeout == timeout))

    return make, matches


def _cookie_container(validate_key, encrypt_key, namespace, timeout):
    from zodbsession.cookiecodec import normalize_encryption_keys
    from zodbsession.cookiecontainer import CookieSessionDataContainer
    secret = _derived(validate_key, 'cookie data')
    keys = ((hashlib.sha256(
        b'zodbsession.beaker encrypt_key ' + encrypt_key.encode('utf-8')
    ).digest(),) if encrypt_key is not None else None)
    cookie_name = (namespace[:25] + '_data')

    def make():
        options = dict(secret=secret, encryption_key=keys,
                       cookie_name=cookie_name)
        if timeout is not None:
            options.update(timeout=timeout, resolution=resolution_for(timeout))
        return CookieSessionDataContainer(**options)

    def matches(container):
        return (isinstance(container, CookieSessionDataContainer)
                and container.secret == (secret,)
                and container.encryption_key
                == normalize_encryption_keys(keys)
                and container.cookie_name == cookie_name
                and (timeout is None or container.timeout == timeout))

    return make, matches
