"""The admin page in a real headless Chromium (the protocol helpers of
tests/test_browser.py): sign in with the token, see the figures and
charts, sweep; a screenshot of the page.

With ZODBSESSION_DOCS_SCREENSHOTS=1 the screenshot is also written to
docs/_static/admin.png.
"""
import os
import shutil

import pytest

from zodbsession import clock
from zodbsession.admin import admin_app
from zodbsession.maintenance import maintenance_of
from zodbsession.testing import SessionTestClient
from zodbsession.testing import filestorage_db
from zodbsession.testing.servers import waitress_serving
from zodbsession.wsgi import SessionMiddleware

from test_browser import CHROMIUM
from test_browser import browser  # noqa: F401  (the fixture)
from test_browser import png_size

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason='no Chromium (/usr/bin/chromium); .ci/run installs it')

TOKEN = 'browser-test-admin-token'
START = 1_700_000_000
DOCS_STATIC = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), 'docs', '_static')


def app(environ, start_response):
    data = environ['zodbsession.session']['app']
    data['n'] = data.get('n', 0) + 1
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'ok']


def simulate_traffic(db, manual_clock):
    """Twelve hours of clients arriving and leaving, maintenance ticking
    every ten minutes: a history of sessions, and live slices."""
    sessions = SessionMiddleware(app, db=db)
    maintenance = maintenance_of(db)
    clients = []
    for step in range(72):
        for _ in range(1 + (step // 6) % 4):
            client = SessionTestClient()
            client.call(sessions, PATH_INFO='/')
            clients.append(client)
        for client in clients[-4:]:
            client.call(sessions, PATH_INFO='/')
        manual_clock.advance(600)
        maintenance.tick()


@pytest.fixture
def admin_url(tmp_path):
    with clock.use_clock(clock.ManualClock(START)) as manual, \
            filestorage_db(str(tmp_path)) as db:
        simulate_traffic(db, manual)
        with waitress_serving(admin_app(db, token=TOKEN), threads=2) as url:
            yield url


# (admin_url first: the browser, with its open connections, closes before
# the server stops.)
def test_sign_in_see_the_figures_and_sweep(admin_url, browser, tmp_path):
    browser.open(admin_url + '/')
    # Refused: the sign-in form, no figures.
    assert browser.text('storage-size') is None
    assert browser.js('!!document.getElementById("sign-in")')
    browser.submit(f"""
        const form = document.querySelector('form[action="login"]');
        form.token.value = 'not the token';
        form.submit();""")
    assert browser.text('storage-size') is None
    assert 'not the admin token' in browser.js('document.body.innerText')
    browser.submit(f"""
        const form = document.querySelector('form[action="login"]');
        form.token.value = {TOKEN!r};
        form.submit();""")
    assert browser.text('storage-size').endswith(' B')
    assert int(browser.text('sessions').replace(',', '')) > 0
    # Both charts drew: a line of the history, a bar per live slice.
    assert browser.js(
        'document.querySelector("polyline").getAttribute("points")'
        '.split(" ").length') > 10
    assert browser.js('document.querySelectorAll("rect.bar").length') >= 4
    # The token never reached the page's scripts.
    assert browser.js('document.cookie') == ''
    browser.submit('document.getElementById("sweep").click();')
    assert browser.text('note') == 'Swept.'
    assert browser.text('last-sweep').endswith('slice(s)')
    browser.call('Emulation.setDeviceMetricsOverride',
                 session=browser.session, width=1100, height=1000,
                 deviceScaleFactor=1, mobile=False)
    shot = browser.screenshot(tmp_path / 'admin.png')
    assert png_size(shot) == (1100, 1000)
    assert shot.stat().st_size > 20000
    if os.environ.get('ZODBSESSION_DOCS_SCREENSHOTS'):
        os.makedirs(DOCS_STATIC, exist_ok=True)
        shutil.copy(shot, os.path.join(DOCS_STATIC, 'admin.png'))
