"""How long the request path is: the zodbsession functions one request
runs, counted exactly (not timed, so the figure does not depend on how
busy the machine is).

For a returning client's read-only request and a new client's write,
both through ``SessionMiddleware`` on a FileStorage with 1,000 sessions
(warm), it prints the distinct zodbsession functions the request ran,
and how many calls to them it made in all.

The same for a signed-cookie read-write and read-only request: the
package in a ``CookieSessionDataContainer``, the requests of
``bench_cookies.py`` (the read-only one on cookies within the cookie's
resolution, so nothing is re-sent; checked).

Then the breadth of those two cookie requests beside Pyramid's doing the
same (bench_cookies' Pyramid peers): every Python function the request
runs, whoever's (ours, the transaction package's, WebOb's, the standard
library's), the calls to them, and the size of their bytecode. A path
that runs more distinct functions touches more memory per request (code
objects, their bytecode and caches, the module dictionaries they read),
and pays for it in cache misses that no count of instructions shows.

Run:  python bench/path_length.py
"""
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_cookies  # noqa: E402
import bench_requests  # noqa: E402
import common  # noqa: E402

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(
    __import__('zodbsession').__file__))) + os.sep + 'zodbsession' + os.sep


def calls_by_function(call):
    """{code object: calls} of every Python function ``call()`` runs."""
    seen = {}

    def profile(frame, event, arg):
        if event == 'call':
            code = frame.f_code
            seen[code] = seen.get(code, 0) + 1

    sys.setprofile(profile)
    try:
        call()
    finally:
        sys.setprofile(None)
    return seen


def count_path(call):
    """(distinct zodbsession functions, calls to them) of ``call()``."""
    seen = {(code.co_filename, code.co_firstlineno, code.co_name): calls
            for code, calls in calls_by_function(call).items()
            if code.co_filename.startswith(PACKAGE_DIR)}
    return len(seen), sum(seen.values()), seen


def measure(sessions=1000):
    """{'ro': (functions, calls), 'new': (functions, calls)}."""
    directory = tempfile.mkdtemp(prefix='zodbsession-path-')
    peer = bench_requests.ZodbsessionPeer(directory, sessions)
    peer.build()
    for index in range(sessions):          # warm: every session loaded
        peer.request('ro', index)
    for _ in range(20):
        peer.request('new', None)
    result = {}
    for variant, index in (('ro', 7), ('new', None)):
        functions, calls, _seen = count_path(
            lambda: peer.request(variant, index))
        result[variant] = (functions, calls)
    peer.db.close()
    return result


def measure_cookies(warm=50):
    """{'cookie_rw': (functions, calls), 'cookie_ro': (functions, calls)}."""
    with common.temp_dir(prefix='zodbsession-path-') as directory:
        return _measure_cookies(directory, warm)


def _measure_cookies(directory, warm):
    result = {}
    for variant, read_only in (('cookie_rw', False), ('cookie_ro', True)):
        peer = bench_cookies.ZodbsessionPeer(
            directory, encrypted=False, read_only=read_only)
        try:
            peer.check()
            peer.before_batch()
            for _ in range(warm):
                peer.one_request()
            functions, calls, _seen = count_path(peer.one_request)
            peer.after_batch()
            if read_only:
                assert not peer.checks.set_cookie_responses, \
                    'the read-only cookie request re-sent a cookie'
                assert not peer.batch_wrote, \
                    'the read-only cookie request wrote to the storage'
        finally:
            peer.close()
        result[variant] = (functions, calls)
    return result


def count_breadth(call):
    """(distinct Python functions, calls to them, bytes of their
    bytecode) of ``call()``, every module's."""
    seen = calls_by_function(call)
    return (len(seen), sum(seen.values()),
            sum(len(code.co_code) for code in seen))


def measure_breadth(warm=50):
    """{(peer, variant): (functions, calls, bytecode bytes)} of the
    signed-cookie requests, ours and Pyramid's."""
    result = {}
    with common.temp_dir(prefix='zodbsession-path-') as directory:
        for variant, read_only in (('read-write', False),
                                   ('read-only', True)):
            peers = {
                'zodbsession': bench_cookies.ZodbsessionPeer(
                    directory, encrypted=False, read_only=read_only),
                'Pyramid': bench_cookies.PyramidPeer(read_only=read_only)}
            for name, peer in peers.items():
                try:
                    peer.before_batch()
                    for _ in range(warm):
                        peer.one_request()
                    result[name, variant] = count_breadth(peer.one_request)
                    peer.after_batch()
                finally:
                    peer.close()
    return result


LABELS = {'ro': 'a returning read-only request',
          'new': "a new client's write",
          'cookie_rw': 'a signed-cookie read-write request',
          'cookie_ro': 'a signed-cookie read-only request'}


def main():
    figures = measure()
    figures.update(measure_cookies())
    for variant, (functions, calls) in figures.items():
        print(f'{LABELS[variant]}: {functions} distinct zodbsession'
              f' functions, {calls} calls')
    print('\nsigned-cookie requests, every Python function they run:')
    for (peer, variant), (functions, calls, size) in (
            measure_breadth().items()):
        print(f'  {peer} {variant}: {functions} distinct functions,'
              f' {calls} calls, {size:,} bytes of bytecode')


if __name__ == '__main__':
    main()
