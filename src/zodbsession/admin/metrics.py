"""The store's figures in the Prometheus text format."""
from zodbsession.admin.auth import bearer_matches
from zodbsession.admin.auth import check_token
from zodbsession.stats import collect

# Record sizes are taken from this many records per scrape.
METRICS_SAMPLE = 200


def metric_families(figures):
    """prometheus_client metric families for ``zodbsession.stats``
    figures."""
    from prometheus_client.core import CounterMetricFamily
    from prometheus_client.core import GaugeMetricFamily

    sessions = GaugeMetricFamily(
        'zodbsession_sessions', 'Sessions not yet swept, by container.',
        labels=['container'])
    live_slices = GaugeMetricFamily(
        'zodbsession_live_slices', 'Live time slices, by container.',
        labels=['container'])
    record_bytes = GaugeMetricFamily(
        'zodbsession_record_bytes', 'Sizes of sampled session records.',
        labels=['container', 'quantile'])
    for container in figures['containers']:
        if container['sessions'] is None:
            continue
        name = container['name']
        sessions.add_metric([name], container['sessions'])
        live_slices.add_metric([name], sum(
            1 for entry in container['slices'] if not entry['expired']))
        sizes = container['record_bytes']
        if sizes['sampled']:
            for quantile, key in (('0.5', 'median'), ('0.99', 'p99'),
                                  ('1', 'max')):
                record_bytes.add_metric([name, quantile], sizes[key])
    yield sessions
    yield live_slices
    yield record_bytes
    yield GaugeMetricFamily('zodbsession_storage_bytes',
                            'Size of the storage.',
                            value=figures['storage_size'])
    for what, record in (('sweep', figures['last_sweep']),
                         ('pack', figures['last_pack'])):
        if record:
            yield GaugeMetricFamily(
                f'zodbsession_last_{what}_timestamp_seconds',
                f'When the last {what} ran.', value=record['at'])
            yield GaugeMetricFamily(
                f'zodbsession_last_{what}_duration_seconds',
                f'How long the last {what} took.', value=record['seconds'])
    pack = figures['last_pack']
    if pack:
        yield GaugeMetricFamily(
            'zodbsession_last_pack_reclaimed_bytes',
            'Bytes the last pack reclaimed.',
            value=max(0, pack['size_before'] - pack['size_after']))
    per_process = {
        'requests': 'Requests served.',
        'retries': 'Requests re-run after a conflict.',
        'unavailable': 'Requests answered with a 503.'}
    for name, documentation in per_process.items():
        family = CounterMetricFamily(f'zodbsession_{name}', documentation,
                                     labels=['process'])
        for process in figures['processes']:
            family.add_metric([process['process']], process[name])
        yield family
    conflicts = CounterMetricFamily(
        'zodbsession_conflicts', 'Conflicts, by what they were about'
        ' (package/key).', labels=['key'])
    for label, count in sorted(figures['totals']['conflicts'].items()):
        conflicts.add_metric([label], count)
    yield conflicts


def render(db):
    """(content type, body bytes) of the metrics of ``db``."""
    from prometheus_client import CONTENT_TYPE_LATEST
    from prometheus_client import CollectorRegistry
    from prometheus_client import generate_latest

    figures = collect(db, sample=METRICS_SAMPLE)

    class Collector:
        def collect(self):
            return metric_families(figures)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector())
    return CONTENT_TYPE_LATEST, generate_latest(registry)


def metrics_app(db, token=None):
    """A WSGI app answering every GET with the metrics of ``db``; with
    ``token``, only requests sending ``Authorization: Bearer TOKEN``
    (others get a 401)."""
    import prometheus_client     # noqa: F401  (fail now, not per scrape)
    secret = check_token(token, 'metrics_app', required=False)

    def app(environ, start_response):
        if secret is not None and not bearer_matches(environ, secret):
            body = b'401 Unauthorized: send Authorization: Bearer TOKEN\n'
            start_response('401 Unauthorized', [
                ('Content-Type', 'text/plain; charset=utf-8'),
                ('WWW-Authenticate', 'Bearer realm="zodbsession"'),
                ('Content-Length', str(len(body)))])
            return [body]
        if environ.get('REQUEST_METHOD', 'GET') not in ('GET', 'HEAD'):
            start_response('405 Method Not Allowed', [
                ('Allow', 'GET, HEAD'), ('Content-Length', '0')])
            return [b'']
        content_type, body = render(db)
        start_response('200 OK', [('Content-Type', content_type),
                                  ('Content-Length', str(len(body))),
                                  ('Cache-Control', 'no-store')])
        return [body]

    return app
