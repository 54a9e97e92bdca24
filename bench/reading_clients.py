"""What clients that only read cost the storage, and what in-place
changes keep: the figures behind two promises of the README.

For each container (the site's persistent one, RAM, cookie), through
``SessionMiddleware(app, db=db)`` at its defaults on a FileStorage in a
temporary directory:

- ``N`` requests of new clients (no cookie) that only read a package's
  data (get, [] on a missing key, in, len, iteration, keys()): bytes the
  storage grew by, transactions committed, Set-Cookie headers sent;
- one client stores ``cart=['apple']`` and ``prefs={'theme': 'light'}``,
  then, in another request, ``cart.append('pear')`` and
  ``prefs['theme'] = 'dark'`` without ``changed()``; the database is
  closed and reopened, and the values read back are printed.

Run:  python bench/reading_clients.py [--requests 1000]
"""
import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(
    __file__)), os.pardir, 'src'))

import webtest  # noqa: E402

from zodbsession import CookieSessionDataContainer  # noqa: E402
from zodbsession import ISession  # noqa: E402
from zodbsession import RAMSessionDataContainer  # noqa: E402
from zodbsession import testing  # noqa: E402
from zodbsession.wsgi import SessionMiddleware  # noqa: E402

PKG = 'bench.reading'
CONTAINERS = {
    'persistent': None,
    'ram': RAMSessionDataContainer,
    'cookie': lambda: CookieSessionDataContainer(
        secret='bench-reading-cookie-secret-000001'),
}


def app(environ, start_response):
    data = ISession(environ['zodbsession.request'])[PKG]
    action = environ['PATH_INFO']
    if action == '/store':
        data['cart'] = ['apple']
        data['prefs'] = {'theme': 'light'}
    elif action == '/mutate':
        data['cart'].append('pear')
        data['prefs']['theme'] = 'dark'
    elif action == '/read':
        data.get('x'), 'x' in data, len(data), list(data), list(data.keys())
        try:
            data['missing']
        except KeyError:
            pass
    body = json.dumps(dict(data), sort_keys=True).encode('utf-8')
    start_response('200 OK', [('Content-Type', 'application/json')])
    return [body]


def measure(kind, requests, directory):
    with testing.filestorage_db(directory) as db:
        middleware = SessionMiddleware(app, db=db)
        if CONTAINERS[kind] is not None:
            testing.use_containers(db, **{PKG: CONTAINERS[kind]()})
        meter = testing.StorageMeter(db)
        responses = testing.get_without_cookies(
            middleware, '/read', count=requests)
        cookies = sum(len(testing.set_cookie_headers(r)) for r in responses)
        reading = (meter.bytes_added, meter.committed, cookies)
        browser = webtest.TestApp(middleware)
        browser.get('/store')
        browser.get('/mutate')
        jar = dict(browser.cookies)
    with testing.filestorage_db(directory) as db:
        again = webtest.TestApp(SessionMiddleware(app, db=db))
        for name, value in jar.items():
            again.set_cookie(name, value)
        kept = again.get('/show').json
    return reading, kept


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--requests', type=int, default=1000)
    args = parser.parse_args(argv)
    testing.setUp()
    try:
        for kind in CONTAINERS:
            with tempfile.TemporaryDirectory(
                    prefix='zodbsession-reading-') as directory:
                (grown, committed, cookies), kept = measure(
                    kind, args.requests, directory)
            print(f'{kind:10} {args.requests} reading requests without'
                  f' cookies: {grown} bytes added, committed={committed},'
                  f' {cookies} Set-Cookie headers; changed in place, after'
                  f' reopening the database: {kept}')
    finally:
        testing.tearDown()


if __name__ == '__main__':
    main()
