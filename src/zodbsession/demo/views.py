"""The demo's pages and form handlers.

Each view takes a WebOb request (inside SessionMiddleware) and returns a
WebOb response. Every package keeps its data under its own package id;
the cart's lives in a container of its own (see ``app.make_app``).
"""
import json

from webob import Response

from zodbsession.demo import csrf
from zodbsession.demo import templates as t
from zodbsession.interfaces import ISessionDataContainer
from zodbsession.context import registry_for
from zodbsession.principals import remember_principal
from zodbsession.principals import revoke_sessions
from zodbsession.principals import sessions_of

COUNTER = 'demo.counter'
CART = 'demo.cart'
PREFS = 'demo.prefs'
AUTH = 'demo.auth'
PACKAGES = (COUNTER, CART, PREFS, AUTH, csrf.PKG_ID)

CATALOGUE = {'apple': 'Apple', 'bread': 'Bread', 'cheese': 'Cheese',
             'coffee': 'Coffee', 'tea': 'Tea'}
MAX_QUANTITY = 99
LANGUAGES = {'en': ('English', 'Hello'), 'de': ('Deutsch', 'Hallo'),
             'fr': ('Français', 'Bonjour')}
DEFAULT_PREFS = {'theme': 'light', 'language': 'en'}
MAX_USERNAME = 40


class BadRequest(Exception):
    """The form was wrong; the message tells the user what to change."""


def session_of(request):
    return request.environ['zodbsession.session']


def prefs_of(session):
    prefs = dict(DEFAULT_PREFS)
    stored = session.get(PREFS)
    if stored is not None:
        prefs.update(stored)
    return prefs


def redirect_home(request):
    # 303: the browser fetches the page with GET, so reloading it does
    # not post the form again.
    response = Response(status=303)
    response.location = request.application_url + '/'
    return response


def _html(body, status=200):
    response = Response(body, status=status, charset='utf-8',
                        content_type='text/html')
    response.cache_control = 'no-store'
    return response


# -- pages -------------------------------------------------------------------
# The home page is the application's root, so its forms use relative
# actions ('cart/add'), which work wherever the application is mounted.

def home(request):
    """The page counter, and everything the session holds."""
    session = session_of(request)
    counter = session[COUNTER]
    counter['count'] = counter.get('count', 0) + 1
    token = csrf.token(session)
    prefs = prefs_of(session)
    user = (session.get(AUTH) or {}).get('user')
    greeting = LANGUAGES.get(prefs['language'], LANGUAGES['en'])[1]
    who = f'{greeting}, {user}' if user else greeting
    body = t.HOME.substitute(
        greeting=t.escape(who), client_id=t.escape(session.client_id[:8]),
        counter=counter['count'], cart=_cart_html(session, token),
        prefs=_prefs_html(prefs, token),
        auth=_auth_html(user, token, _other_sessions(request, user)),
        data=_data_table(request))
    return _html(t.page('zodbsession demo', body, prefs['theme'],
                        prefs['language']))


def _cart_html(session, token):
    cart = session.get(CART) or {}
    rows = [[t.escape(CATALOGUE.get(item, item)), t.escape(quantity),
             t.form('cart/remove', token,
                    f'<input type="hidden" name="item"'
                    f' value="{t.escape(item)}">',
                    'remove', 'inline', quiet=True)]
            for item, quantity in sorted(cart.items())]
    add = t.form(
        'cart/add', token,
        t.select('item', sorted(CATALOGUE.items(), key=lambda kv: kv[1]))
        + f'<input type="number" name="quantity" value="1" min="1"'
          f' max="{MAX_QUANTITY}" aria-label="quantity" style="width:4.5rem">',
        'add to cart')
    clear = t.form('cart/clear', token, '', 'empty cart', quiet=True) \
        if cart else ''
    return t.table(['item', 'quantity', ''], rows, 'the cart is empty') \
        + add + clear


def _prefs_html(prefs, token):
    fields = (
        t.select('theme', [(name, name) for name in t.THEMES],
                 prefs['theme'], 'theme')
        + t.select('language',
                   [(code, name) for code, (name, _) in LANGUAGES.items()],
                   prefs['language'], 'language'))
    return t.form('prefs', token, fields, 'save')


def _other_sessions(request, user):
    """How many other browsers are signed in as ``user``."""
    if not user:
        return 0
    return sum(1 for info in sessions_of(_zodbsession_request(request),
                                         user) if not info.current)


def _zodbsession_request(request):
    return request.environ['zodbsession.request']


def _auth_html(user, token, others=0):
    if user:
        return (f'<p>Signed in as <strong id="user">{t.escape(user)}'
                f'</strong>; signed in elsewhere too:'
                f' <strong id="other-sessions">{others}</strong>.</p>'
                + t.form('logout', token, '', 'log out')
                + t.form('logout-others', token, '',
                         'log out my other sessions', quiet=True))
    return ('<p class="muted">Any name will do: there is no password.</p>'
            + t.form('login', token,
                     f'<input name="username" placeholder="your name"'
                     f' maxlength="{MAX_USERNAME}" required>',
                     'log in'))


def _data_table(request):
    session = session_of(request)
    registry = registry_for(request.environ['zodbsession.request'])
    rows = []
    for pkg_id in PACKAGES:
        data = session.get(pkg_id)
        if data is None:
            continue
        named = registry.queryUtility(ISessionDataContainer, pkg_id)
        where = pkg_id if named is not None else '(unnamed)'
        for key in sorted(data):
            value = data[key]
            if pkg_id == csrf.PKG_ID:
                value = value[:6] + '…'
            rows.append([f'<code>{t.escape(pkg_id)}</code>',
                         t.escape(where), f'<code>{t.escape(key)}</code>',
                         f'<code>{t.escape(repr(value))}</code>'])
    return t.table(['package id', 'container', 'key', 'value'], rows)


def state(request):
    """GET /session.json: the session's data; reads, creates nothing."""
    session = session_of(request)
    client_id = session.existing_client_id()
    data = {}
    for pkg_id in (COUNTER, CART, PREFS, AUTH):
        pkg_data = session.get(pkg_id)
        if pkg_data is not None:
            data[pkg_id] = dict(pkg_data)
    body = json.dumps({'client_id': client_id[:8] if client_id else None,
                       'data': data}, sort_keys=True)
    response = Response(body, charset='utf-8',
                        content_type='application/json')
    response.cache_control = 'no-store'
    return response


# -- forms (POST, CSRF-checked by the app) ----------------------------------

def _field(request, name):
    value = request.POST.get(name)
    if value is None:
        raise BadRequest(f'the form lacks the field {name!r}')
    return value.strip()


def _catalogue_item(request):
    item = _field(request, 'item')
    if item not in CATALOGUE:
        raise BadRequest(
            f'unknown item {item!r}; choose one of'
            f' {", ".join(sorted(CATALOGUE))}')
    return item


def cart_add(request):
    item = _catalogue_item(request)
    text = _field(request, 'quantity')
    try:
        quantity = int(text)
    except ValueError:
        quantity = 0
    if not 1 <= quantity <= MAX_QUANTITY:
        raise BadRequest(f'quantity must be a whole number from 1 to'
                         f' {MAX_QUANTITY}, got {text!r}')
    cart = session_of(request)[CART]
    # One key per item: two tabs adding different items merge without
    # a conflict.
    cart[item] = cart.get(item, 0) + quantity
    return redirect_home(request)


def cart_remove(request):
    item = _catalogue_item(request)
    cart = session_of(request).get(CART)
    if cart is not None and item in cart:
        del cart[item]
    return redirect_home(request)


def cart_clear(request):
    cart = session_of(request).get(CART)
    if cart is not None:
        for item in list(cart):
            del cart[item]
    return redirect_home(request)


def save_prefs(request):
    theme = _field(request, 'theme')
    language = _field(request, 'language')
    if theme not in t.THEMES:
        raise BadRequest(f'unknown theme {theme!r}; choose one of'
                         f' {", ".join(t.THEMES)}')
    if language not in LANGUAGES:
        raise BadRequest(f'unknown language {language!r}; choose one of'
                         f' {", ".join(LANGUAGES)}')
    prefs = session_of(request)[PREFS]
    prefs['theme'] = theme
    prefs['language'] = language
    return redirect_home(request)


def login(request):
    username = _field(request, 'username')
    if not username or len(username) > MAX_USERNAME \
            or not username.isprintable():
        raise BadRequest(f'a user name is 1 to {MAX_USERNAME} printable'
                         f' characters')
    session = session_of(request)
    # A new client id at login: an id somebody planted in the browser
    # before (session fixation) does not lead to the signed-in session.
    session.regenerate()
    session[AUTH]['user'] = username
    # Filed under the user, for "log out my other sessions".
    remember_principal(_zodbsession_request(request), username)
    csrf.renew(session)
    return redirect_home(request)


def logout(request):
    # All the client's data goes, in every container, under a new id.
    session_of(request).invalidate()
    return redirect_home(request)


def logout_others(request):
    """End every other session of the signed-in user (other browsers
    start afresh on their next request); this one stays signed in."""
    user = (session_of(request).get(AUTH) or {}).get('user')
    if user:
        revoke_sessions(_zodbsession_request(request), user,
                        keep_current=True)
    return redirect_home(request)


def healthz(request):
    """For load balancers: never touches the session or the database."""
    response = Response('ok', content_type='text/plain', charset='utf-8')
    response.cache_control = 'no-store'
    return response


def error_page(request, status, title, message):
    theme = prefs_of(session_of(request))['theme'] \
        if 'zodbsession.session' in request.environ else 'light'
    return _html(t.message_page(title, message, request.application_url + '/',
                                 theme), status=status)
