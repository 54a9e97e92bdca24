"""The demo in a real headless Chromium.

The browser is driven over the Chrome DevTools protocol on a pipe
(``--remote-debugging-pipe``: JSON messages ending in NUL on fds 3 and 4),
so no driver, WebSocket library or extra package is needed.
"""
import base64
import json
import os
import re
import select
import shutil
import struct
import subprocess
import tempfile
import time

import pytest

from zodbsession.testing.processes import child_command
from zodbsession.testing.processes import child_environment

CHROMIUM = next((path for path in ('/usr/bin/chromium',
                                   shutil.which('chromium') or '',
                                   shutil.which('chromium-browser') or '')
                 if path and os.access(path, os.X_OK)), None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason='no Chromium (/usr/bin/chromium); .ci/run installs it')

TIMEOUT = 20
WINDOW = (1100, 900)
FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
         '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync',
         '--window-size={},{}'.format(*WINDOW)]
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def read_line(stream, timeout):
    """One line from a pipe, waiting at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    data = b''
    while not data.endswith(b'\n'):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([stream], [], [], left)[0]:
            raise AssertionError(f'no line within {timeout}s: {data!r}')
        chunk = os.read(stream.fileno(), 1)
        if not chunk:
            raise AssertionError(f'the pipe closed: {data!r}')
        data += chunk
    return data.decode('utf-8')


@pytest.fixture(scope='module')
def demo_url(tmp_path_factory):
    """``zodbsession serve`` on a free port (``--port 0``); its URL."""
    directory = tmp_path_factory.mktemp('browser')
    env = child_environment()
    process = subprocess.Popen(
        child_command('-m', 'zodbsession', 'serve', '--db',
                      f'file://{directory}/s.fs', '--port', '0'),
        cwd=directory, env=env, stdout=subprocess.PIPE,
        stderr=open(directory / 'serve.err', 'w'))
    try:
        line = read_line(process.stdout, TIMEOUT)
        yield re.search(r'(http://\S+)/ ', line).group(1)
    finally:
        process.terminate()
        assert process.wait(timeout=TIMEOUT) == 0
        process.stdout.close()


class Browser:
    """A headless Chromium with a fresh profile, one tab, driven by CDP."""

    def __init__(self, profile):
        commands_read, self._commands = os.pipe()
        self._events, events_write = os.pipe()

        def on_fds_3_and_4():
            # In the child, before exec: the protocol's fixed fds.
            read_end, write_end = os.dup(commands_read), os.dup(events_write)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)

        self.process = subprocess.Popen(
            [CHROMIUM, *FLAGS, f'--user-data-dir={profile}',
             '--remote-debugging-pipe', 'about:blank'],
            close_fds=False, preexec_fn=on_fds_3_and_4,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(commands_read)
        os.close(events_write)
        self._buffer = b''
        self._received = []
        self._next_id = 0
        target = self.call('Target.createTarget', url='about:blank')
        self.session = self.call('Target.attachToTarget', flatten=True,
                                 targetId=target['targetId'])['sessionId']
        self.call('Page.enable', session=self.session)
        # The window's own frame takes part of --window-size; pin the
        # page's viewport so screenshots have a known size.
        self.call('Emulation.setDeviceMetricsOverride', session=self.session,
                  width=WINDOW[0], height=WINDOW[1], deviceScaleFactor=1,
                  mobile=False)

    def call(self, method, session=None, **params):
        """Send a command; its result (AssertionError on a CDP error)."""
        self._next_id += 1
        message = {'id': self._next_id, 'method': method, 'params': params}
        if session:
            message['sessionId'] = session
        os.write(self._commands, json.dumps(message).encode() + b'\0')
        number = self._next_id
        reply = self._wait_for(lambda m: m.get('id') == number)
        assert 'error' not in reply, (method, reply['error'])
        return reply['result']

    def _wait_for(self, matches):
        deadline = time.monotonic() + TIMEOUT
        while True:
            for index, message in enumerate(self._received):
                if matches(message):
                    return self._received.pop(index)
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._events], [], [],
                                              left)[0]:
                raise AssertionError(f'Chromium did not answer in {TIMEOUT}s')
            chunk = os.read(self._events, 1 << 16)
            assert chunk, 'Chromium closed the protocol pipe'
            self._buffer += chunk
            *messages, self._buffer = self._buffer.split(b'\0')
            self._received.extend(json.loads(m) for m in messages)

    def _page_loaded(self):
        self._wait_for(lambda m: m.get('method') == 'Page.loadEventFired'
                       and m.get('sessionId') == self.session)

    def open(self, url):
        self._received.clear()
        result = self.call('Page.navigate', session=self.session, url=url)
        assert 'errorText' not in result, result
        self._page_loaded()

    def js(self, expression):
        result = self.call('Runtime.evaluate', session=self.session,
                           expression=expression, returnByValue=True)
        assert 'exceptionDetails' not in result, result
        return result['result'].get('value')

    def submit(self, script):
        """Run ``script`` (which submits a form); wait for the new page."""
        self._received.clear()
        self.js(script)
        self._page_loaded()

    def text(self, element_id):
        return self.js(f'document.getElementById({element_id!r})'
                       f'?.textContent ?? null')

    def screenshot(self, path):
        data = self.call('Page.captureScreenshot', session=self.session,
                         format='png')['data']
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self):
        try:
            self.call('Browser.close')
            self.process.wait(timeout=TIMEOUT)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(timeout=TIMEOUT)
            os.close(self._commands)
            os.close(self._events)


@pytest.fixture
def browser(tmp_path):
    profile = tempfile.mkdtemp(prefix='chromium-', dir=tmp_path)
    running = Browser(profile)
    yield running
    running.close()


def png_size(path):
    """(width, height) of a PNG, checking its signature."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b'IHDR'
    return struct.unpack('>II', data[16:24])


def test_the_counter_counts_page_loads_of_one_browser(browser, demo_url):
    browser.open(demo_url + '/')
    assert browser.text('counter') == '1'
    client_id = browser.text('client-id')
    assert len(client_id) == 8
    browser.open(demo_url + '/')
    assert browser.text('counter') == '2'
    assert browser.text('client-id') == client_id
    # The id cookie is HttpOnly: the page's scripts cannot read it.
    assert browser.js('document.cookie') == ''


def test_forms_log_in_and_change_preferences(browser, demo_url, tmp_path):
    browser.open(demo_url + '/')
    before = browser.text('client-id')
    browser.submit("""
        const form = document.querySelector('form[action="login"]');
        form.username.value = 'Ada <Lovelace>';
        form.submit();""")
    # Logged in under a new id (regenerated), the data came along.
    assert browser.text('user') == 'Ada <Lovelace>'
    assert browser.text('client-id') != before
    assert browser.text('counter') == '2'
    browser.submit("""
        const form = document.querySelector('form[action="cart/add"]');
        form.item.value = 'coffee';
        form.quantity.value = '3';
        form.submit();""")
    assert 'Coffee' in browser.text('cart')
    browser.submit("""
        const form = document.querySelector('form[action="prefs"]');
        form.theme.value = 'dark';
        form.language.value = 'fr';
        form.submit();""")
    assert browser.js('document.documentElement.lang') == 'fr'
    assert browser.js('document.querySelector("h1").textContent') == (
        'Bonjour, Ada <Lovelace>!')
    assert browser.js('getComputedStyle(document.body).backgroundColor') \
        == 'rgb(21, 25, 30)'
    shot = browser.screenshot(tmp_path / 'demo.png')
    assert png_size(shot) == WINDOW
    assert shot.stat().st_size > 10000
    browser.submit(
        "document.querySelector('form[action=\"logout\"]').submit();")
    assert browser.text('user') is None
    assert browser.text('counter') == '1'


def test_command_line_screenshot_and_dump_dom(demo_url, tmp_path):
    shot = tmp_path / 'shot.png'
    profile = tempfile.mkdtemp(prefix='chromium-', dir=tmp_path)
    subprocess.run(
        [CHROMIUM, *FLAGS, f'--user-data-dir={profile}',
         f'--screenshot={shot}', demo_url + '/'],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        timeout=TIMEOUT * 2, check=True)
    assert png_size(shot) == WINDOW
    assert shot.stat().st_size > 10000
    dom = subprocess.run(
        [CHROMIUM, *FLAGS, f'--user-data-dir={profile}', '--dump-dom',
         demo_url + '/'],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        timeout=TIMEOUT * 2, check=True).stdout
    # A browser restart forgets the session cookie (no cookieLifetime):
    # a new session, counting from 1 again.
    assert '<p class="big" id="counter">1</p>' in dom
