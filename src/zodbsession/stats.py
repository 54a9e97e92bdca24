"""What the session store is doing: the figures behind ``zodbsession
stats``, the metrics app and the admin page.

``collect(db)`` reads, in one read-only transaction: every container's
sessions and time slices, a sample of record sizes, the storage size,
the last sweep and pack (``zodbsession.maintenance``), and the figures
each running process published (``zodbsession.procstats``). It writes
nothing. Counting sessions reads every bucket of the slice trees (never
a session); record sizes come from at most ``sample`` records.
"""
import statistics

from zodbsession import clock
from zodbsession import expiry
from zodbsession.interfaces import IInspectableContainer
from zodbsession.hosting.maintenance import STALE_PROCESS_SECONDS
from zodbsession.records import MAINTENANCE_KEY
from zodbsession.records import PROCESSES_KEY
from zodbsession.site import ROOT_KEY

DEFAULT_SAMPLE = 1000


class NoSessionSite(LookupError):
    """The database holds no session site (no sessions yet)."""


def _percentile(sorted_values, fraction):
    index = min(len(sorted_values) - 1,
                max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def record_sizes(storage, records):
    """{'sampled', 'median', 'p99', 'max'} bytes of ``records``' pickles
    (None where nothing was sampled)."""
    sizes = []
    for record in records:
        try:
            data, _serial = storage.load(record._p_oid, '')
        except Exception:   # a record swept meanwhile, a storage quirk
            continue
        sizes.append(len(data))
    sizes.sort()
    if not sizes:
        return {'sampled': 0, 'median': None, 'p99': None, 'max': None}
    return {'sampled': len(sizes), 'median': int(statistics.median(sizes)),
            'p99': _percentile(sizes, 0.99), 'max': sizes[-1]}


def container_figures(name, container, storage, now, sample):
    figures = {'name': name, 'type': type(container).__name__,
               'timeout': container.timeout,
               'resolution': container.resolution,
               'sessions': None, 'slices': [], 'record_bytes': None}
    if not IInspectableContainer.providedBy(container):
        return figures      # RAM (another process's memory), cookies
    oldest = expiry.oldest_live_end(now, container.timeout,
                                    container.resolution)
    slices = [{'end': end, 'sessions': count,
               'expired': oldest is not None and end <= oldest}
              for end, count in container.slice_counts()]
    figures['slices'] = slices
    figures['sessions'] = sum(entry['sessions'] for entry in slices)
    figures['live_sessions'] = sum(entry['sessions'] for entry in slices
                                   if not entry['expired'])
    figures['record_bytes'] = record_sizes(
        storage, container.sample_records(sample))
    return figures


def _plain(value):
    return dict(value) if value else None


def collect(db, sample=DEFAULT_SAMPLE, now=None):
    """The figures of ``db`` as plain data (JSON-ready); NoSessionSite
    if it holds no session site."""
    now = clock.now() if now is None else now
    with db.transaction() as connection:
        root = connection.root()
        site = root.get(ROOT_KEY)
        if site is None:
            raise NoSessionSite('the database holds no sessions yet')
        containers = [
            container_figures(name, container, db.storage, now, sample)
            for name, container in sorted(site.containers().items())]
        maintenance = root.get(MAINTENANCE_KEY)
        processes = []
        for name, record in (root.get(PROCESSES_KEY) or {}).items():
            if now - record.published_at > STALE_PROCESS_SECONDS:
                continue
            figures = dict(record.figures)
            figures['published_at'] = record.published_at
            processes.append(figures)
        result = {
            'at': now,
            'storage_size': db.getSize(),
            'containers': containers,
            'last_sweep': _plain(maintenance and maintenance.last_sweep),
            'last_pack': _plain(maintenance and maintenance.last_pack),
            'processes': processes,
            'totals': totals(processes),
            'history': [list(point) for point in
                        (maintenance.history if maintenance else ())],
        }
        connection.transaction_manager.abort()  # read only: nothing to commit
    return result


def totals(processes):
    """Requests, retries, 503s and conflicts by key, summed."""
    summed = {'requests': 0, 'retries': 0, 'unavailable': 0,
              'conflicts': {}}
    for figures in processes:
        for name in ('requests', 'retries', 'unavailable'):
            summed[name] += figures.get(name, 0)
        for label, count in figures.get('conflicts', {}).items():
            summed['conflicts'][label] = (
                summed['conflicts'].get(label, 0) + count)
    return summed


def _when(record, describe):
    if not record:
        return 'never'
    return f'at {record["at"]:.0f} ({record["seconds"]:.3f} s): {describe}'


def text_lines(stats):
    """The figures as the lines ``zodbsession stats`` prints after the
    container list."""
    lines = [f'storage size: {stats["storage_size"]} bytes']
    for figures in stats['containers']:
        if figures['sessions'] is None:
            continue
        sizes = figures['record_bytes']
        name = figures['name'] or '(unnamed)'
        live = [entry for entry in figures['slices']
                if not entry['expired']]
        lines.append(
            f'{name}: {figures["live_sessions"]} live in {len(live)} time'
            f' slice(s) (' + ', '.join(
                f'{entry["end"]}: {entry["sessions"]}' for entry in live)
            + ')')
        if sizes['sampled']:
            lines.append(
                f'{name}: record bytes median={sizes["median"]}'
                f' p99={sizes["p99"]} max={sizes["max"]}'
                f' (of {sizes["sampled"]} sampled)')
    sweep, pack = stats['last_sweep'], stats['last_pack']
    removed = sweep and 'removed ' + ', '.join(
        f'{name or "(unnamed)"}: {count} slice(s)'
        for name, count in sorted(sweep['removed'].items()))
    lines.append('last sweep: ' + _when(sweep, removed))
    lines.append('last pack: ' + _when(pack, pack and (
        f'{pack["size_before"]} -> {pack["size_after"]} bytes')))
    lines.append(f'processes: {len(stats["processes"])} published'
                 ' in the last hour')
    for figures in stats['processes']:
        lines.append(
            f'  {figures["process"]}: requests={figures["requests"]}'
            f' retries={figures["retries"]} 503s={figures["unavailable"]}'
            f' (published at {figures["published_at"]:.0f})')
    conflicts = stats['totals']['conflicts']
    lines.append('conflicts by key:' + ('' if conflicts else ' none'))
    for label, count in sorted(conflicts.items(), key=lambda i: -i[1]):
        lines.append(f'  {label}: {count}')
    return lines
