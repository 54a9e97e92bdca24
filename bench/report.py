"""Turn bench/out/*.json into bench/RESULTS.md and bench/sweep_scaling.png.

Every benchmark writes one JSON file; this script reads whichever exist
and writes one Markdown report: per benchmark, the absolute figures and
the ratios to the peers measured in the same run, and at the top the
machine (cores, Python) and when each benchmark ran. A file this script
does not know, or cannot read, still gets its ratios listed. The plot
shows sweep time against the number of live sessions, per library, from
bench/out/sweep.json.

Run:  python bench/report.py   (bench/run_all.py runs it after the
      benchmarks)
"""
import datetime
import glob
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, 'out')
REPORT = os.path.join(HERE, 'RESULTS.md')
PLOT = os.path.join(HERE, 'sweep_scaling.png')

# Known benchmarks, in report order: file stem -> section title.
SECTIONS = {
    'requests': 'Request latency against the bare ZODB floor',
    'sweep': 'Sweep scaling',
    'bytes': 'Bytes per session',
    'cookies': 'Cookie sessions',
    'concurrency': 'Concurrency over ZEO',
}


# -- formatting ---------------------------------------------------------------

def table(headers, rows):
    lines = ['| ' + ' | '.join(headers) + ' |',
             '|' + '|'.join('---' for _ in headers) + '|']
    lines += ['| ' + ' | '.join(str(cell) for cell in row) + ' |'
              for row in rows]
    return '\n'.join(lines)


def seconds(value):
    if value is None:
        return '-'
    if value >= 1:
        return f'{value:.2f} s'
    if value >= 1e-3:
        return f'{value * 1e3:.2f} ms'
    return f'{value * 1e6:.0f} µs'


def times(value):
    return '-' if value is None else f'{value:.2f}x'


def verdict(met):
    return {True: 'met', False: '**missed**', None: '-'}[met]


def flatten_ratios(data, prefix=''):
    """[(name, value)] of the numbers under ``ratios`` (any nesting)."""
    found = []
    for name, value in (data or {}).items():
        label = f'{prefix}{name}'
        if isinstance(value, dict):
            if 'ratio' in value:
                found.append((label, value['ratio']))
            else:
                found.extend(flatten_ratios(value, label + ' / '))
        elif isinstance(value, (int, float)):
            found.append((label, value))
    return found


# -- one renderer per benchmark -----------------------------------------------

def render_requests(data):
    results = data['results']
    rows = []
    for key, r in results.items():
        peer, variant = key.split('/')
        floor = results.get('floor/rw' if variant == 'new'
                            else f'floor/{variant}')
        zope = results.get(f'zope.session/{variant}')
        rows.append([
            key, f"{r['median_us']:.0f}", f"{r.get('p90_us', 0):.0f}",
            times(r['median_us'] / floor['median_us']) if floor else '-',
            times(r['median_us'] / zope['median_us']) if zope else '-',
            f"{r.get('records_per_transaction', 0):.1f}"
            if r.get('transactions') else 'no write',
            f"{r.get('bytes_per_transaction', 0):.0f}"
            if r.get('transactions') else '-'])
    settings = data.get('settings', {})
    text = [
        f"{settings.get('sessions', '?'):,} sessions on a FileStorage,"
        ' warm cache; `rw` reads and increments a counter, `ro` reads it,'
        ' `new` creates a session. The floor is bare ZODB (one small'
        ' persistent object per client, no session library).', '',
        table(['request', 'median µs', 'p90 µs', 'vs floor',
               'vs zope.session', 'records/txn', 'bytes/txn'], rows), '']
    ratios = data.get('ratios', {})
    if ratios:
        text += [table(
            ['ratio', 'value', 'target', 'verdict'],
            [[name, times(r['ratio']),
              '-' if r.get('target') is None else f"<= {r['target']}x",
              verdict(r.get('met'))] for name, r in ratios.items()]), '']
    return text


def render_sweep(data):
    rows = []
    for name, d in data['datasets'].items():
        rows.append([
            name, d['library'], f"{d['live']:,}", f"{d['expired']:,}",
            seconds(d['sweep_seconds']['median']),
            seconds(d['sweep_seconds']['min']),
            f"{d.get('sweep_loads', '-')}", f"{d.get('sweep_stores', '-')}"])
    settings = data.get('settings', {})
    text = [
        '`sweep()` + commit on a cold FileStorage (fresh process),'
        f" median of {settings.get('repeats', '?')} runs.", '',
        table(['dataset', 'library', 'live', 'expired', 'median', 'min',
               'objects loaded', 'objects stored'], rows), '']
    ratios = data.get('ratios', {})
    rows = [[name, f'{value:.4g}'] for name, value in ratios.items()]
    if rows:
        text += [table(['ratio', 'value'], rows), '']
    targets = data.get('targets', {})
    if targets:
        text += [', '.join(f'{name}: {verdict(met)}'
                           for name, met in targets.items()), '']
    if os.path.exists(PLOT):
        text += ['![sweep time against live sessions](sweep_scaling.png)',
                 '']
    return text


def render_bytes(data):
    rows = []
    for name, p in data['peers'].items():
        rows.append([name, f"{p['bytes_per_session']:.0f}",
                     f"{p.get('records_per_session', 0):.2f}",
                     f"{p.get('sessions', '-')}"])
    text = ['Storage growth per new session (FileStorage, after a warm-up).',
            '', table(['peer', 'bytes/session', 'records/session',
                       'sessions'], rows), '']
    ratios = data.get('ratios', {})
    if ratios:
        text += [table(['ratio', 'value'],
                       [[n, f'{v:.3f}'] for n, v in ratios.items()]), '']
    targets = data.get('targets', {})
    if targets:
        text += [', '.join(f'{name}: {verdict(met)}'
                           for name, met in targets.items()), '']
    return text


def render_cookies(data):
    rows = [[name, seconds(r['median']), seconds(r['min'])]
            for name, r in data['results'].items()]
    read_only = data.get('read_only', {})
    if read_only:
        intro = ('One request whose session lives in a cookie: read-write,'
                 ' or read-only on the cookies a returning client holds.')
    else:
        intro = 'One read-write request whose session lives in a cookie.'
    text = [intro, '', table(['peer', 'median / request', 'min'], rows), '']
    comparisons = data.get('comparisons', [])
    if comparisons:
        text += [table(
            ['comparison', 'theirs / ours (above 1: ours faster)',
             'target', 'verdict'],
            [[f"{c['comparison']}: {c['theirs']} vs {c['ours']}",
              times(c['ratio_theirs_over_ours']), c.get('target', '-'),
              verdict(c.get('met'))] for c in comparisons]), '']
    for name, found in read_only.items():
        line = (f"- {name}: {found['responses_with_set_cookie']} of"
                f" {found['responses_checked']} responses sent Set-Cookie")
        if 'wrote_to_storage' in found:
            line += f"; wrote to storage: {found['wrote_to_storage']}"
        text.append(line)
    if read_only:
        text.append('')
    return text


def render_concurrency(data):
    settings = data['settings']
    rows = []
    for name, run in data['runs'].items():
        rows.append([
            name, f"{run['requests_per_second']:.0f}",
            ' '.join(f'{value:.0f}' for value in run.get(
                'requests_per_second_by_round', ())),
            times(run.get('throughput_over_zope_session')),
            f"{run['retries']}", f"{100 * run['retry_rate']:.2f}%",
            f"{run['exhausted']}", f"{run['clients_with_lost_updates']}"])
    text = [
        f"A ZEO server holding {settings['prefill']:,} sessions;"
        f" {settings['processes']} worker processes x"
        f" {settings['requests_per_process']} requests, half creating a"
        ' session, half updating one of their own; up to'
        f" {settings['retries']} retries per request;"
        f" {settings.get('rounds', 1)} round(s) of every run, interleaved:"
        ' requests/s is the median round, retries count all rounds.'
        ' zodbsession-warm:'
        ' the current time slice already holds the existing sessions;'
        ' zodbsession-fresh: a slice just began (new sessions start an'
        ' empty tree).', '',
        table(['run', 'requests/s', 'by round', 'vs zope.session',
               'retries',
               'retry rate', 'retries ran out', 'clients with lost updates'],
              rows), '']
    for name, run in data['runs'].items():
        if run.get('conflicts'):
            text.append(f'- {name} conflicted on: ' + ', '.join(
                f'{what} ×{count}' for what, count in run['conflicts'].items()))
    text.append('')
    ratios = data.get('ratios', {})
    if 'throughput_zodbsession_over_floor' in ratios:
        text += [f"zodbsession (worse run) / floor:"
                 f" {times(ratios['throughput_zodbsession_over_floor'])}"
                 ' (target ≥ 0.9x).', '']
    if 'throughput_fresh_floor_over_floor' in ratios:
        text += ['What the promise that a request sees every commit'
                 ' finished before it began costs over ZEO (one round trip'
                 " to the server before each returning client's request):"
                 ' floor, fresh reads / floor ='
                 f" {times(ratios['throughput_fresh_floor_over_floor'])};"
                 ' zodbsession (worse run) / floor, fresh reads ='
                 f" {times(ratios['throughput_zodbsession_over_fresh_floor'])}.",
                 '']
    targets = data.get('targets', {})
    if targets:
        text += [', '.join(f'{name}: {verdict(met)}'
                           for name, met in targets.items()), '']
    return text


def render_generic(data):
    rows = [[name, f'{value:.4g}'] for name, value in
            flatten_ratios(data.get('ratios'))]
    if not rows:
        return ['(no ratios recorded)', '']
    return [table(['ratio', 'value'], rows), '']


RENDERERS = {'requests': render_requests, 'sweep': render_sweep,
             'bytes': render_bytes, 'cookies': render_cookies,
             'concurrency': render_concurrency}


# -- the plot -----------------------------------------------------------------

def sweep_points(data):
    """{library: [(live sessions, median sweep seconds)]}, sorted."""
    points = {}
    for d in data.get('datasets', {}).values():
        try:
            points.setdefault(d['library'], []).append(
                (d['live'], d['sweep_seconds']['median']))
        except (KeyError, TypeError):
            continue
    return {library: sorted(set(values))
            for library, values in points.items()}


def plot_sweep(data, path=PLOT):
    """Write the sweep-scaling plot; returns False if there is no data."""
    points = sweep_points(data)
    if not points:
        return False
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=100)
    styles = {'zodbsession': ('tab:blue', 'o'),
              'zope.session': ('tab:red', 's')}
    for library, values in sorted(points.items()):
        color, marker = styles.get(library, (None, '^'))
        xs, ys = zip(*values)
        axes.plot(xs, ys, marker=marker, color=color, label=library)
        for x, y in values:
            axes.annotate(seconds(y), (x, y), textcoords='offset points',
                          xytext=(4, 6), fontsize=8, color=color)
    axes.set_xscale('log')
    axes.set_yscale('log')
    axes.margins(x=0.2, y=0.25)   # room for the labels
    axes.set_xlabel('live sessions')
    axes.set_ylabel('sweep() + commit, seconds (median)')
    expired = sorted({d.get('expired') for d in data['datasets'].values()})
    axes.set_title('Sweeping expired sessions'
                   + (f' ({", ".join(f"{e:,}" for e in expired if e)}'
                      ' expired)' if expired else ''))
    axes.grid(True, which='both', alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return True


# -- the report ---------------------------------------------------------------

def load_results():
    """{stem: (data or None, error or None, mtime)} of bench/out/*.json."""
    found = {}
    for path in sorted(glob.glob(os.path.join(OUT_DIR, '*.json'))):
        stem = os.path.basename(path)[:-len('.json')]
        mtime = os.path.getmtime(path)
        try:
            with open(path, encoding='utf-8') as f:
                found[stem] = (json.load(f), None, mtime)
        except (OSError, ValueError) as exc:
            found[stem] = (None, f'{type(exc).__name__}: {exc}', mtime)
    return found


def machine_lines(results):
    machines = {}
    for stem, (data, _, _) in results.items():
        machine = (data or {}).get('machine')
        if machine:
            key = (machine.get('cores'), machine.get('implementation'),
                   machine.get('python'), machine.get('platform'))
            machines.setdefault(key, []).append(stem)
    lines = []
    for (cores, implementation, python, platform), stems in machines.items():
        lines.append(f'- Machine: {cores} cores, {implementation or "Python"}'
                     f' {python}, {platform}'
                     + ('' if len(machines) == 1
                        else f' ({", ".join(stems)})'))
    return lines


def when(mtime):
    return datetime.datetime.fromtimestamp(mtime).strftime('%Y-%m-%d %H:%M')


def versions_line(results):
    versions = {}
    for data, _, _ in results.values():
        for name, version in ((data or {}).get('versions') or {}).items():
            if version:
                versions[name] = version
    return ', '.join(f'{name} {version}'
                     for name, version in sorted(versions.items()))


def build_report(results, plotted):
    now = datetime.datetime.now().strftime('%Y-%m-%d %H:%M')
    lines = [
        '# Benchmark results', '',
        'Generated by `make bench` (`python bench/run_all.py`; this file by'
        f' `bench/report.py`) on {now}. Every ratio compares figures taken'
        ' in the same run on the same machine. Do not edit by hand.', '',
    ]
    lines += machine_lines(results)
    lines.append(f'- Report written with Python {sys.version.split()[0]}')
    versions = versions_line(results)
    if versions:
        lines.append(f'- Versions: {versions}')
    lines.append('')
    ordered = [stem for stem in SECTIONS if stem in results]
    ordered += sorted(stem for stem in results if stem not in SECTIONS)
    missing = [stem for stem in SECTIONS if stem not in results]
    for stem in ordered:
        data, error, mtime = results[stem]
        title = SECTIONS.get(stem, stem)
        quick = (data or {}).get('quick') or (
            (data or {}).get('settings') or {}).get('quick')
        lines += [f'## {title}', '',
                  f'`bench/out/{stem}.json`, measured {when(mtime)}'
                  + (' with `--quick` (smoke-test sizes: indicative only)'
                     if quick else '') + '.', '']
        if error:
            lines += [f'Could not read it: {error}', '']
            continue
        renderer = RENDERERS.get(stem, render_generic)
        try:
            lines += renderer(data)
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
            lines += [f'(Its format is not the one this report knows:'
                      f' {type(exc).__name__}: {exc}.)', '']
            lines += render_generic(data)
    if missing:
        lines += ['## Not measured', '',
                  'No results yet for: ' + ', '.join(
                      SECTIONS[stem] for stem in missing)
                  + '. Run `make bench`.', '']
    if not plotted:
        lines += ['(No sweep plot: bench/out/sweep.json is missing or holds'
                  ' no per-size sweep times.)', '']
    return '\n'.join(lines).rstrip() + '\n'


def main():
    results = load_results()
    sweep = results.get('sweep', (None, None, None))[0]
    plotted = False
    if sweep:
        try:
            plotted = plot_sweep(sweep)
        except ImportError as exc:
            print(f'no plot: {exc}', file=sys.stderr)
    with open(REPORT, 'w', encoding='utf-8') as f:
        f.write(build_report(results, plotted))
    print(f'wrote {os.path.relpath(REPORT)}'
          + (f' and {os.path.relpath(PLOT)}' if plotted else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())
