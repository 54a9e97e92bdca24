"""How long the request path is: the zodbsession functions one request
runs, counted exactly (not timed, so the figure does not depend on how
busy the machine is).

For a returning client's read-only request and a new client's write,
both through ``SessionMiddleware`` on a FileStorage with 1,000 sessions
(warm), it prints the distinct zodbsession functions the request ran,
and how many calls to them it made in all.

Run:  python bench/path_length.py
"""
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_requests  # noqa: E402

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(
    __import__('zodbsession').__file__))) + os.sep + 'zodbsession' + os.sep


def count_path(call):
    """(distinct zodbsession functions, calls to them) of ``call()``."""
    seen = {}

    def profile(frame, event, arg):
        if event == 'call':
            code = frame.f_code
            if code.co_filename.startswith(PACKAGE_DIR):
                key = (code.co_filename, code.co_firstlineno, code.co_name)
                seen[key] = seen.get(key, 0) + 1

    sys.setprofile(profile)
    try:
        call()
    finally:
        sys.setprofile(None)
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


def main():
    for variant, (functions, calls) in measure().items():
        label = {'ro': 'a returning read-only request',
                 'new': "a new client's write"}[variant]
        print(f'{label}: {functions} distinct zodbsession functions,'
              f' {calls} calls')


if __name__ == '__main__':
    main()
