"""Cold starts for tests: several worker processes that start at the same
moment against one (new, empty) database.

``start_together(uri, processes)`` runs ``python -m
zodbsession.testing.coldstart URI`` that many times. Each child imports
everything first, says so, and then blocks reading its stdin, one pipe
shared by all; once every child is waiting, the parent closes the pipe,
and they all go at once: build ``SessionMiddleware(app, db_uri=URI)``
as a worker does when it starts, serve one request that stores a value,
and exit 0 (or print the error and exit 1).
"""
import os
import select
import subprocess
import sys
import time

from zodbsession.testing.processes import START_TIMEOUT
from zodbsession.testing.processes import child_command
from zodbsession.testing.processes import child_environment
from zodbsession.testing.processes import stop_process

WAITING = 'WAITING'
STARTED = 'STARTED'


class ColdStart:
    """What one child process did: ``returncode`` and its output."""

    def __init__(self, returncode, output):
        self.returncode = returncode
        self.output = output

    @property
    def started(self):
        return self.returncode == 0 and STARTED in self.output

    def __repr__(self):
        return f'<ColdStart {self.returncode}: {self.output[-2000:]!r}>'


def start_together(uri, processes, timeout=START_TIMEOUT):
    """Start ``processes`` workers on ``uri`` at the same moment; the list
    of their ``ColdStart`` results."""
    read_end, write_end = os.pipe()
    children = []
    try:
        for _ in range(processes):
            children.append(subprocess.Popen(
                child_command('-m', 'zodbsession.testing.coldstart', uri),
                stdin=read_end, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, env=child_environment()))
        os.close(read_end)
        read_end = None
        for process in children:
            _wait_until_waiting(process, timeout)
        os.close(write_end)          # the barrier falls for all at once
        write_end = None
        results = []
        for process in children:
            try:
                output, _ = process.communicate(timeout=timeout)
                returncode = process.returncode
            except subprocess.TimeoutExpired:
                stop_process(process)
                output, returncode = process.stdout.read(), 'timed out'
            results.append(ColdStart(
                returncode, output.decode(errors='replace')))
        return results
    finally:
        for end in (read_end, write_end):
            if end is not None:
                os.close(end)
        for process in children:
            stop_process(process)
            process.stdout.close()


def _wait_until_waiting(process, timeout):
    """Read the child's output up to WAITING (its imports are done)."""
    deadline = time.monotonic() + timeout
    seen = b''
    while WAITING.encode() not in seen:
        remaining = deadline - time.monotonic()
        ready = remaining > 0 and select.select(
            [process.stdout], [], [], remaining)[0]
        chunk = os.read(process.stdout.fileno(), 4096) if ready else b''
        if not chunk:
            stop_process(process)
            raise RuntimeError(
                f'cold-start child did not get ready within {timeout}s'
                f' ({process.returncode}):'
                f' {seen.decode(errors="replace")[-2000:]}')
        seen += chunk


def _child(uri):
    import traceback

    import webtest

    from zodbsession.testing.workers import counter_app
    from zodbsession.hosting.wsgi import SessionMiddleware

    print(WAITING, flush=True)
    sys.stdin.buffer.read()          # EOF: the parent let everyone go
    try:
        app = SessionMiddleware(counter_app, db_uri=uri)
        try:
            reply = webtest.TestApp(app).post('/increment')
            assert reply.json['data'] == {'counter': 1}, reply.json
        finally:
            app.db.close()
    except Exception:
        traceback.print_exc()
        return 1
    print(STARTED, flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(_child(sys.argv[1]))
