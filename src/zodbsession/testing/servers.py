"""Real servers for tests: waitress (WSGI) and uvicorn (ASGI) in a thread.

Each serves on a free port of 127.0.0.1 and yields its base URL; every
wait is bounded, and the server is stopped (and checked stopped) when
the block ends.
"""
import contextlib
import threading
import time

STOP_TIMEOUT = 30       # seconds a server may take to stop
START_TIMEOUT = 30      # seconds uvicorn may take to start


@contextlib.contextmanager
def waitress_serving(wsgi_app, threads=8):
    """``wsgi_app`` served by waitress with ``threads`` worker threads."""
    import waitress.server
    server = waitress.server.create_server(
        wsgi_app, host='127.0.0.1', port=0, threads=threads)
    stopping = threading.Event()

    def run():
        try:
            server.run()
        except OSError:
            # Closing the server under its select() loop ends the loop
            # with EBADF: how waitress stops when stopped from outside.
            if not stopping.is_set():
                raise

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield f'http://127.0.0.1:{server.effective_port}'
    finally:
        stopping.set()
        server.close()
        thread.join(STOP_TIMEOUT)
        server.task_dispatcher.shutdown(timeout=STOP_TIMEOUT)
        if thread.is_alive():
            raise RuntimeError('waitress did not stop')


@contextlib.contextmanager
def uvicorn_serving(asgi_app):
    """``asgi_app`` served by uvicorn (one event loop, in a thread)."""
    import socket

    import uvicorn
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(('127.0.0.1', 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(
        asgi_app, log_level='warning', lifespan='off', access_log=False))
    thread = threading.Thread(target=server.run,
                              kwargs={'sockets': [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError('uvicorn did not start')
        time.sleep(0.01)
    try:
        yield f'http://127.0.0.1:{port}'
    finally:
        server.should_exit = True
        thread.join(STOP_TIMEOUT)
        listener.close()
        if thread.is_alive():
            raise RuntimeError('uvicorn did not stop')
