"""Process plumbing for the real servers that tests run: free ports, the
environment of child processes, bounded waits, and stopping a process.

Every wait here is bounded, and ``stop_process`` kills a process that
will not stop, so the servers' ``with`` blocks (``testing.zeo``,
``testing.postgres``, ``testing.workers``) leave nothing running when a
test fails.
"""
import os
import socket
import subprocess
import sys
import time

START_TIMEOUT = 60      # seconds a server may take to start listening
STOP_TIMEOUT = 10       # seconds it may take to stop before it is killed
REQUEST_TIMEOUT = 60    # seconds one HTTP request to a worker may take


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on (right now)."""
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def child_command(*args):
    """The command line of a Python child process running ``args``: this
    interpreter; ``child_environment()`` gives it this one's path."""
    return [sys.executable, *args]


def child_path():
    """PYTHONPATH for a child that imports what this process imports.

    This zodbsession first, then this process's ``sys.path``: under
    buildout's ``bin/test`` (or any script that sets its path up itself)
    the child's interpreter alone would not find the eggs.
    """
    source_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    entries = [source_root] + [
        os.path.abspath(entry) for entry in sys.path if entry]
    inherited = os.environ.get('PYTHONPATH')
    if inherited:
        entries += inherited.split(os.pathsep)
    unique = []
    for entry in entries:
        if entry not in unique and os.path.exists(entry):
            unique.append(entry)
    return os.pathsep.join(unique)


def child_environment(**overrides):
    """os.environ for a child process that can import this zodbsession
    and everything this process can (``child_path``), with
    ``overrides``.

    The ZEO server needs it too: it resolves conflicts on SessionData by
    calling its ``_p_resolveConflict``.
    """
    env = dict(os.environ)
    env['PYTHONPATH'] = child_path()
    env.update(overrides)
    return env


def _describe_exit(process, log_path):
    text = ''
    if log_path and os.path.exists(log_path):
        with open(log_path, errors='replace') as log:
            text = log.read()[-4000:]
    return (f'process {process.args!r} exited with'
            f' {process.returncode}:\n{text}')


def wait_for_port(port, process, log_path=None, timeout=START_TIMEOUT):
    """Wait until something accepts connections on ``port``.

    Fails early if ``process`` exits, and after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(_describe_exit(process, log_path))
        try:
            with socket.create_connection(('127.0.0.1', port), timeout=1):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(
                f'nothing listened on port {port} within {timeout}s')
        time.sleep(0.05)


def stop_process(process, timeout=STOP_TIMEOUT):
    """Terminate ``process``; kill it if it does not exit in time."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)


def wait_for(condition, timeout, what):
    """Poll ``condition()`` until true; TimeoutError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f'{what} did not happen within {timeout}s')
        time.sleep(0.02)
