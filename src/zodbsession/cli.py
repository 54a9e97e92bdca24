"""The ``zodbsession`` command: serve the demo, inspect and maintain a
session database.

Every subcommand takes ``--db URI`` (default ``file://var/sessions.fs``
under the current directory). Only ``serve`` creates a database; ``stats``,
``sweep`` and ``pack`` need one that holds a session site, and create or
write nothing when it does not. Errors a user can cause (a database that
does not open, a bad argument, a port in use, a server that does not
answer) end the command with one line on stderr and a non-zero exit
status, never a traceback.
"""
import argparse
import json
import logging
import signal
import sys

import transaction

from zodbsession.hosting import db as zdb
from zodbsession.site import ROOT_KEY
from zodbsession.hosting.sitechanges import run_in_transaction
from zodbsession.hosting.packing import DEFAULT_PACK_INTERVAL
from zodbsession.hosting.packing import pack_storage
from zodbsession.hosting.retry import DEFAULT_RETRIES
from zodbsession.hosting.retry import DEFAULT_RETRY_TIMEOUT

PROG = 'zodbsession'

# Exit statuses: 1 for a failed operation, 2 for a bad command line
# (as argparse does).
FAILED = 1
USAGE = 2
INTERRUPTED = 130
BROKEN_PIPE = 128 + 13      # as if SIGPIPE had ended the command

# Seconds stats, sweep and pack wait for a ZEO or PostgreSQL server to
# answer: less than a worker, whose server may be starting with it; this
# one should be up already.
CLI_SERVER_TIMEOUT = 3

# The client id manager settings ``stats`` shows; the secret never.
COOKIE_SETTINGS = ('namespace', 'cookieLifetime', 'path', 'domain',
                   'secure', 'httpOnly', 'sameSite', 'postOnly',
                   'thirdparty')


class CommandError(Exception):
    """Ends the command with this message as its one line on stderr."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, not usage plus error."""

    def error(self, message):
        self.exit(USAGE, f'{self.prog}: error: {message}'
                         f' (see {self.prog} --help)\n')


def _bounded_int(low, high=None):
    def convert(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f'expected a whole number, got {text!r}') from None
        if value < low or (high is not None and value > high):
            bounds = f'{low}..{high}' if high is not None else f'>= {low}'
            raise argparse.ArgumentTypeError(
                f'expected a number {bounds}, got {value}')
        return value
    return convert


def _non_negative(unit, high=float('inf')):
    def convert(text):
        try:
            value = float(text)
        except ValueError:
            value = -1
        if not value >= 0 or value == float('inf') or value > high:
            bounds = f'0..{high:g}' if high != float('inf') else '>= 0'
            raise argparse.ArgumentTypeError(
                f'expected a number of {unit} {bounds}, got {text!r}')
        return value
    return convert


# A century: further back, the pack's time is before the dates ZODB's
# time stamps and the platform's time_t can hold (the pack failed with
# "year must be greater than 1900"), and nothing is that old anyway.
MAX_PACK_DAYS = 36500
_days = _non_negative('days', MAX_PACK_DAYS)
_seconds = _non_negative('seconds')


def build_parser():
    parser = _Parser(
        prog=PROG,
        description='Serve the zodbsession demo, and inspect or maintain a'
                    ' session database.',
        epilog='Database URIs (zodburi): file://var/sessions.fs (default),'
               ' memory://, zeo://host:port, postgres://user@host/dbname'
               ' (RelStorage). Run "zodbsession COMMAND --help" for a'
               " command's options.")
    parser.add_argument(
        '-v', '--verbose', action='store_true',
        help="show the libraries' log messages (database drivers, waitress)")
    commands = parser.add_subparsers(
        dest='command', metavar='COMMAND', required=True,
        parser_class=_Parser)

    def command(name, help, description):
        sub = commands.add_parser(name, help=help, description=description)
        sub.add_argument(
            '--db', metavar='URI', default=zdb.DEFAULT_URI,
            help=f'the session database (default: {zdb.DEFAULT_URI})')
        return sub

    serve = command(
        'serve', 'run the demo application on waitress',
        'Run the demo application (page counter, shopping cart,'
        ' preferences, login) with sessions in the database, on waitress.'
        ' Stop it with Ctrl-C or SIGTERM.')
    serve.add_argument('--host', default='127.0.0.1',
                       help='interface to listen on (default: 127.0.0.1)')
    serve.add_argument('--port', type=_bounded_int(0, 65535), default=8080,
                       help='port to listen on; 0 picks a free one'
                            ' (default: 8080)')
    serve.add_argument('--threads', type=_bounded_int(1, 256), default=8,
                       help='worker threads, each with its own database'
                            ' connection (default: 8)')
    serve.add_argument('--retries', type=_bounded_int(0, 1000),
                       default=DEFAULT_RETRIES,
                       help='most times a request is re-run after a'
                            ' database conflict (default: no count, only'
                            ' --retry-timeout)')
    serve.add_argument('--retry-timeout', type=_seconds, metavar='SECONDS',
                       default=DEFAULT_RETRY_TIMEOUT,
                       help='seconds from its start after which a'
                            ' conflicting request is answered with a 503'
                            f' (default: {DEFAULT_RETRY_TIMEOUT:g})')
    serve.add_argument('--pack-interval', type=_seconds, metavar='SECONDS',
                       default=DEFAULT_PACK_INTERVAL,
                       help='seconds between background packs of the'
                            ' storage, one process at a time; 0: never'
                            f' (default: {DEFAULT_PACK_INTERVAL:g})')
    serve.set_defaults(run=run_serve)

    stats = command(
        'stats', 'show containers, sessions, storage and request figures',
        'Show the registered session containers (timeout, resolution,'
        ' sessions not yet swept, live time slices, record sizes), the'
        ' storage size, the last sweep and pack, the figures the running'
        ' processes published (requests, retries, conflicts by key,'
        ' 503s) and the client id cookie settings. Secrets are never'
        ' shown. Writes nothing.')
    stats.add_argument('--json', action='store_true',
                       help='print the figures as one JSON document')
    stats.set_defaults(run=run_stats)

    sweep = command(
        'sweep', 'remove expired sessions from every container',
        'Remove the expired sessions of every registered container, in one'
        ' transaction. Run "pack" afterwards to reclaim the space.')
    sweep.set_defaults(run=run_sweep)

    pack = command(
        'pack', 'pack the storage, reclaiming space of old records',
        'Pack the storage: drop record revisions (swept sessions included)'
        ' older than --days days.')
    pack.add_argument('--days', type=_days, default=0,
                      help='keep revisions younger than this many days'
                           ' (default: 0)')
    pack.add_argument('--keep-old', action='store_true',
                      help="FileStorage: keep the pre-pack copy as"
                           " FILE.old (default: no copy)")
    pack.set_defaults(run=run_pack)
    return parser


def main(argv=None):
    """Run the command line ``argv``; returns the exit status."""
    args = build_parser().parse_args(argv)
    # Drivers log their failures on top of the exception we report; one
    # line is enough unless asked for more.
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.CRITICAL,
        format='%(asctime)s %(levelname)s %(name)s: %(message)s')
    try:
        status = args.run(args) or 0
        # Flushed here, so that a closed pipe shows up below rather than
        # as a traceback when the interpreter flushes at exit.
        sys.stdout.flush()
        return status
    except zdb.DatabaseNotFound as exc:
        print(f'{PROG} {args.command}: {exc} ("{PROG} serve" creates'
              f' one)', file=sys.stderr)
        return FAILED
    except (CommandError, zdb.DatabaseOpenError) as exc:
        print(f'{PROG} {args.command}: {exc}', file=sys.stderr)
        return FAILED
    except BrokenPipeError:
        return _reader_went_away()
    except KeyboardInterrupt:
        print(f'{PROG} {args.command}: interrupted', file=sys.stderr)
        return INTERRUPTED


def _reader_went_away():
    """``zodbsession stats | head -1``: the reader has what it wanted.

    End quietly, with the status of a command that SIGPIPE ended (as
    ``seq`` or ``cat`` do): the rest of the output, still buffered, goes
    nowhere instead of failing again when the interpreter flushes it.
    """
    import os
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return BROKEN_PIPE


def _open(args):
    """The database of ``serve``, created if it does not exist."""
    return zdb.open_database(args.db)


def _open_existing(args):
    """The database of a maintenance command (stats, sweep, pack).

    It must exist and hold a session site; when it does not, the command
    ends having created and written nothing: no directory, no file, no
    record (it is first looked at read-only).
    """
    probe = zdb.open_database(args.db, create=False, read_only=True,
                              server_timeout=CLI_SERVER_TIMEOUT)
    try:
        with probe.transaction() as connection:
            has_site = ROOT_KEY in connection.root()
    finally:
        probe.close()
    if not has_site:
        raise CommandError(
            f'{zdb.redact(args.db)} holds no session site ("{PROG} serve"'
            f' creates one)')
    return zdb.open_database(args.db, create=False,
                             server_timeout=CLI_SERVER_TIMEOUT)


# -- serve ------------------------------------------------------------------

def run_serve(args):
    import waitress
    from zodbsession.demo.app import make_app

    database = _open(args)
    try:
        # One connection per thread, and the maintenance thread's.
        database.setPoolSize(args.threads + 1)
        app = make_app(database, retries=args.retries,
                       retry_timeout=args.retry_timeout,
                       pack_interval=args.pack_interval)
        try:
            server = waitress.create_server(
                app, host=args.host, port=args.port, threads=args.threads,
                ident='zodbsession')
        except OSError as exc:
            raise CommandError(
                f'cannot listen on {args.host}:{args.port}:'
                f' {exc.strerror or exc}') from None
        except ValueError as exc:
            # waitress' way of saying the host name does not resolve.
            raise CommandError(
                f'cannot listen on {args.host}:{args.port}: {exc}') from None
        host, port = _listening_address(server, args)
        print(f'serving the zodbsession demo on http://{host}:{port}/'
              f' (database {zdb.redact(args.db)})', flush=True)
        if not args.verbose:
            # A running server reports what goes wrong in it.
            logging.getLogger().setLevel(logging.WARNING)
        previous = signal.signal(signal.SIGTERM, _stop)
        try:
            server.run()    # returns on SystemExit/KeyboardInterrupt
        finally:
            signal.signal(signal.SIGTERM, previous)
            server.close()
    finally:
        database.close()
    return 0


def _listening_address(server, args):
    """(host, port) for the URL; the real port when --port was 0."""
    port = getattr(server, 'effective_port', None)
    if port is None:
        # A host name with several addresses: one socket each, same port.
        listening = getattr(server, 'effective_listen', None) or [
            (args.host, args.port)]
        port = listening[0][1]
    host = args.host
    if ':' in host and not host.startswith('['):
        host = f'[{host}]'
    return host, port


def _stop(signum, frame):
    # waitress' loop ends cleanly on SystemExit, so the database gets
    # closed (and a FileStorage index written) on SIGTERM as on Ctrl-C.
    raise SystemExit(0)


# -- stats, sweep, pack -------------------------------------------------------

def _site(connection, uri):
    site = connection.root().get(ROOT_KEY)
    if site is None:
        _site_missing(uri)
    return site


def _site_missing(uri):
    # _open_existing checked; someone removed it since.
    raise CommandError(
        f'{zdb.redact(uri)} holds no session site ("{PROG} serve"'
        f' creates one)')


def _display_name(name):
    return name or '(unnamed)'


def run_stats(args):
    from zodbsession import stats as store_stats
    database = _open_existing(args)
    try:
        try:
            figures = store_stats.collect(database)
        except store_stats.NoSessionSite:
            _site_missing(args.db)
        connection = database.open()
        try:
            manager = _site(connection, args.db).client_id_manager
            cookie = {setting: getattr(manager, setting)
                      for setting in COOKIE_SETTINGS
                      if hasattr(manager, setting)}
            secrets = getattr(manager, 'secret', None)
            manager_name = type(manager).__name__
        finally:
            transaction.abort()
            connection.close()
    finally:
        database.close()
    if args.json:
        figures.update(database=zdb.redact(args.db),
                       client_id_manager=manager_name, cookie=cookie,
                       secrets=len(secrets) if secrets else 0)
        print(json.dumps(figures, indent=1, sort_keys=True, default=str))
        return 0
    print(f'database: {zdb.redact(args.db)}')
    print('containers:')
    for container in figures['containers']:
        sessions = container['sessions']
        print(f'  {_display_name(container["name"])}:'
              f' {container["type"]},'
              f' timeout={container["timeout"]}s,'
              f' resolution={container["resolution"]}s,'
              f' sessions={"unknown" if sessions is None else sessions}')
    for line in store_stats.text_lines(figures):
        print(line)
    print(f'client id manager: {manager_name}')
    for setting, value in cookie.items():
        print(f'  {setting}: {value!r}')
    if secrets is not None:
        print(f'  secrets: {len(secrets)} (not shown)')
    return 0


def run_sweep(args):
    database = _open_existing(args)
    try:
        def sweep_all(connection):
            report = []
            for name, container in sorted(
                    _site(connection, args.db).containers().items()):
                report.append((name, type(container).__name__,
                               container.sweep_expired()))
            return report
        report = run_in_transaction(database, sweep_all)
        for name, class_name, dropped in report:
            what = f'removed {dropped} expired time slice(s)'
            print(f'{_display_name(name)} ({class_name}): {what}')
        print('committed')
    finally:
        database.close()
    return 0


def run_pack(args):
    database = _open_existing(args)
    try:
        try:
            before, after = pack_storage(database, keep_old=args.keep_old,
                                         days=args.days)
        except Exception as exc:
            raise CommandError(
                f'packing {zdb.redact(args.db)} failed:'
                f' {type(exc).__name__}: {exc}') from None
        print(f'packed {zdb.redact(args.db)} (revisions older than'
              f' {args.days:g} days): {before} -> {after} bytes')
    finally:
        database.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
