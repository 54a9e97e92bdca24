"""Helpers shared by the benchmarks in bench/.

Each benchmark runs every peer in its own subprocess (``run_worker``), so
that component registrations and object caches never leak from one
library's run into another's, and measures in one driver run so that the
ratios it prints compare numbers taken on the same machine at the same
time.
"""
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import ZODB
import ZODB.FileStorage

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, 'out')
SRC_DIR = os.path.join(os.path.dirname(HERE), 'src')

# A worker prints its result as one line starting with this marker, so
# that anything else it prints (warnings, progress) cannot be mistaken
# for the result.
RESULT_MARKER = 'BENCH-RESULT '


def machine_info():
    """What the numbers were measured on."""
    return {
        'cores': os.cpu_count(),
        'python': platform.python_version(),
        'implementation': platform.python_implementation(),
        'platform': platform.platform(),
        'processor': platform.processor() or platform.machine(),
    }


def machine_line(info=None):
    info = info or machine_info()
    return (f"machine: {info['cores']} cores, {info['implementation']}"
            f" {info['python']}, {info['platform']}")


def package_versions(*names):
    """{distribution name: version} of the libraries being compared."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version
    versions = {}
    for name in names:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return versions


@contextlib.contextmanager
def temp_dir(prefix='zodbsession-bench-', keep=False):
    directory = tempfile.mkdtemp(prefix=prefix)
    try:
        yield directory
    finally:
        if not keep:
            shutil.rmtree(directory, ignore_errors=True)


def open_filestorage_db(path, **db_options):
    """A ZODB.DB on the FileStorage at ``path`` (created if missing)."""
    return ZODB.DB(ZODB.FileStorage.FileStorage(path), **db_options)


def copy_filestorage(source, target):
    """Copy a closed FileStorage (and its index, so opening is quick).

    The copy is flushed to disk here: otherwise the first commit on it
    (FileStorage fsyncs every commit) would pay for writing the whole
    copied file, and the cost of a commit would grow with the file size.
    """
    for suffix in ('', '.index'):
        if os.path.exists(source + suffix):
            shutil.copyfile(source + suffix, target + suffix)
            with open(target + suffix, 'rb+') as f:
                os.fsync(f.fileno())


def remove_filestorage(path):
    for suffix in ('', '.index', '.lock', '.tmp', '.old'):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path + suffix)


class Timer:
    """``with Timer() as t: ...`` then ``t.seconds``."""

    def __enter__(self):
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc_info):
        self.seconds = time.perf_counter() - self._start


def summary(samples):
    """min / median / max of a list of timings (seconds)."""
    return {
        'samples': list(samples),
        'min': min(samples),
        'median': statistics.median(samples),
        'max': max(samples),
    }


def ratio(numerator, denominator):
    return numerator / denominator if denominator else float('inf')


def format_seconds(seconds):
    if seconds >= 1:
        return f'{seconds:.2f} s'
    if seconds >= 1e-3:
        return f'{seconds * 1e3:.1f} ms'
    return f'{seconds * 1e6:.0f} us'


def format_table(headers, rows):
    """A plain-text table, columns left-aligned, first column ragged."""
    table = [list(map(str, headers))] + [list(map(str, row)) for row in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    lines = []
    for index, row in enumerate(table):
        lines.append('  '.join(cell.ljust(width)
                               for cell, width in zip(row, widths)).rstrip())
        if index == 0:
            lines.append('  '.join('-' * width for width in widths))
    return '\n'.join(lines)


# -- subprocess workers -------------------------------------------------

def run_worker(script, *args, timeout=None):
    """Run ``python script --worker ...args`` and return its JSON result.

    The worker gets ``src/`` on its path, so the benchmark measures this
    checkout whether or not it is installed.
    """
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [SRC_DIR] + ([env['PYTHONPATH']] if env.get('PYTHONPATH') else []))
    command = [sys.executable, script, '--worker'] + [str(a) for a in args]
    # stderr passes through: workers report progress there.
    completed = subprocess.run(
        command, env=env, stdout=subprocess.PIPE, text=True,
        timeout=timeout)
    if completed.returncode != 0:
        raise RuntimeError(
            f'worker {" ".join(command)} failed ({completed.returncode})')
    for line in reversed(completed.stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            return json.loads(line[len(RESULT_MARKER):])
    raise RuntimeError(
        f'worker {" ".join(command)} printed no result:\n'
        f'{completed.stdout}')


def emit_result(result):
    """Called by a worker: hand ``result`` (JSON-able) to the driver."""
    sys.stdout.write(RESULT_MARKER + json.dumps(result) + '\n')
    sys.stdout.flush()


def write_json(name, data):
    """Write bench/out/<name>, returning its path."""
    os.makedirs(OUT_DIR, exist_ok=True)
    path = os.path.join(OUT_DIR, name)
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write('\n')
    return path


def progress(message):
    """Progress to stderr, so a worker's stdout stays clean."""
    sys.stderr.write(message + '\n')
    sys.stderr.flush()


def profile_text(function, limit, sort_orders=('cumulative', 'tottime')):
    """Run ``function()`` under cProfile; its statistics as text, the
    ``limit`` top rows in each of ``sort_orders``."""
    import cProfile
    import io
    import pstats
    profiler = cProfile.Profile()
    profiler.enable()
    function()
    profiler.disable()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    for order in sort_orders:
        stats.sort_stats(order).print_stats(limit)
    return text.getvalue()


def set_cookie_values(headers):
    """{name: value} of the Set-Cookie headers in a header list."""
    found = {}
    for name, value in headers:
        if name.lower() == 'set-cookie':
            morsel = value.split(';', 1)[0]
            cookie_name, _, cookie_value = morsel.partition('=')
            found[cookie_name.strip()] = cookie_value.strip().strip('"')
    return found
