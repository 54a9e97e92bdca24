"""The admin page: the store's figures, two charts, sweep and pack."""
import html
import time

from webob import Request
from webob import Response

from zodbsession.adaptation.environ import cookie_value
from zodbsession.admin import auth
from zodbsession.admin.charts import bar_chart
from zodbsession.admin.charts import line_chart
from zodbsession.hosting.maintenance import sweep_all
from zodbsession.hosting.packing import scheduled_pack
from zodbsession.stats import NoSessionSite
from zodbsession.stats import collect

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;background:#f4f6f8;color:#1d2733}
header{background:#1d3557;color:#fff;padding:14px 28px}
header h1{margin:0;font-size:20px} header p{margin:2px 0 0;opacity:.8}
main{padding:18px 28px;display:grid;grid-template-columns:repeat(auto-fit,minmax(460px,1fr));gap:18px}
section{background:#fff;border-radius:8px;padding:14px 18px;box-shadow:0 1px 3px #0002}
h2{font-size:15px;margin:0 0 8px} table{border-collapse:collapse;width:100%}
td,th{padding:3px 8px;border-bottom:1px solid #e3e7eb;text-align:left}
th{font-weight:600;color:#52606d} td.n{text-align:right;font-variant-numeric:tabular-nums}
.figure{font-size:26px;font-weight:600} .tick{font-size:10px;fill:#52606d}
.axis{stroke:#9aa5b1} .line{stroke:#2a9d8f;stroke-width:2} .dot{fill:#2a9d8f}
.bar{fill:#457b9d} .bar.expired{fill:#c9d2da}
form{display:inline} button{font:inherit;padding:6px 14px;margin-right:8px;border:0;border-radius:5px;background:#1d3557;color:#fff;cursor:pointer}
.note{background:#e9f5ec;border-left:4px solid #2a9d8f;padding:6px 10px;margin:0 0 10px}
.empty{color:#52606d} svg{width:100%;height:auto} section.wide{grid-column:1/-1}
"""


def _page(title, body, status=200):
    response = Response(
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<title>{html.escape(title)}</title><style>{STYLE}</style></head>'
        f'<body>{body}</body></html>', status=status, charset='utf-8',
        content_type='text/html')
    response.cache_control = 'no-store'
    response.headers['X-Frame-Options'] = 'DENY'
    response.headers['Content-Security-Policy'] = (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self';"
        " frame-ancestors 'none'")
    return response


def _sign_in(status, message=''):
    note = f'<p class="note">{html.escape(message)}</p>' if message else ''
    return _page('zodbsession admin: sign in', (
        '<header><h1>zodbsession admin</h1></header><main><section>'
        f'{note}<h2>Sign in with the admin token</h2>'
        '<form method="post" action="login"><input type="password"'
        ' name="token" autocomplete="current-password" size="40">'
        ' <button id="sign-in">Sign in</button></form></section></main>'),
        status=status)


def _when(epoch):
    return time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(epoch))


def _rows(rows):
    return ''.join('<tr>' + ''.join(rows_ for rows_ in row) + '</tr>'
                   for row in rows)


def _td(value, number=False):
    return (f'<td class="n">{html.escape(str(value))}</td>' if number
            else f'<td>{html.escape(str(value))}</td>')


def render_figures(figures, csrf, note=''):
    containers = _rows(
        [_td(c['name'] or '(unnamed)'), _td(c['type']),
         _td(c['timeout'], True),
         _td('—' if c['sessions'] is None else c['sessions'], True),
         _td(sum(1 for s in c['slices'] if not s['expired']), True),
         _td('—' if not c['record_bytes'] or not c['record_bytes'][
             'sampled'] else '{median} / {p99} / {max}'.format(
                 **c['record_bytes']), True)]
        for c in figures['containers'])
    sweep, pack = figures['last_sweep'], figures['last_pack']
    sweep_text = 'never' if not sweep else (
        f'{_when(sweep["at"])}, {sweep["seconds"]:.3f} s, removed ' +
        ', '.join(f'{n or "(unnamed)"}: {c} slice(s)'
                  for n, c in sorted(sweep['removed'].items())))
    pack_text = 'never' if not pack else (
        f'{_when(pack["at"])}, {pack["seconds"]:.3f} s,'
        f' {pack["size_before"]:,} → {pack["size_after"]:,} bytes')
    processes = _rows(
        [_td(p['process']), _td(p['requests'], True),
         _td(p['retries'], True), _td(p['unavailable'], True),
         _td(_when(p['published_at']))]
        for p in figures['processes'])
    conflicts = _rows([_td(label), _td(count, True)] for label, count in
                      sorted(figures['totals']['conflicts'].items(),
                             key=lambda item: -item[1])[:15])
    history = [(at, sessions) for at, sessions, _size in
               figures['history']]
    history.append((figures['at'], sum(
        c['sessions'] or 0 for c in figures['containers'])))
    unnamed = next((c for c in figures['containers'] if c['sessions']
                    is not None), None)
    slices = [(s['end'], s['sessions'], s['expired'])
              for s in (unnamed['slices'] if unnamed else [])]
    total = figures['totals']
    note_html = f'<p class="note" id="note">{html.escape(note)}</p>' if (
        note) else ''
    hidden = f'<input type="hidden" name="csrf" value="{csrf}">'
    sliced = html.escape(unnamed['name'] or 'the unnamed container') if (
        unnamed) else 'no container'
    none = '<tr><td colspan="2">none</td></tr>'
    return f"""
<header><h1>zodbsession admin</h1>
<p>at {_when(figures['at'])}</p></header>
<main>
<section><h2>Store</h2>{note_html}
<table><tr><th>storage</th><th>sessions</th><th>requests</th>
<th>retries</th><th>503s</th></tr><tr>
<td class="figure" id="storage-size">{figures['storage_size']:,} B</td>
<td class="figure" id="sessions">{history[-1][1]:,}</td>
<td class="figure" id="requests">{total['requests']:,}</td>
<td class="figure">{total['retries']:,}</td>
<td class="figure">{total['unavailable']:,}</td></tr></table>
<p><b>Last sweep:</b>
<span id="last-sweep">{html.escape(sweep_text)}</span><br>
<b>Last pack:</b> <span id="last-pack">{html.escape(pack_text)}</span></p>
<form method="post" action="sweep">{hidden}
<button id="sweep">Sweep now</button></form>
<form method="post" action="pack">{hidden}
<button id="pack">Pack now</button></form>
</section>
<section><h2>Sessions over time</h2>{line_chart('sessions', history)}</section>
<section class="wide"><h2>Containers</h2><table><tr><th>name</th>
<th>type</th>
<th>timeout s</th><th>sessions</th><th>live slices</th>
<th>record bytes median / p99 / max</th></tr>{containers}</table></section>
<section><h2>Live time slices of {sliced}</h2>
{bar_chart('sessions per time slice', slices)}</section>
<section><h2>Processes (published in the last hour)</h2><table><tr>
<th>process</th><th>requests</th><th>retries</th><th>503s</th>
<th>published</th></tr>{processes}</table></section>
<section><h2>Conflicts by package/key</h2><table><tr><th>key</th>
<th>conflicts</th></tr>{conflicts or none}</table>
</section>
</main>"""


def _form_field(request, name, posted=True):
    """A field of the posted form (``posted``) or of the query string, or
    None: what WebOb cannot read (bytes that are not UTF-8, a charset
    other than UTF-8, a multipart form without its boundary) holds none."""
    try:
        value = (request.POST if posted else request.GET).get(name)
    except (ValueError, LookupError, DeprecationWarning):
        # (UnicodeDecodeError is a ValueError; WebOb raises the warning
        # for a charset other than UTF-8.)
        return None
    return value if isinstance(value, str) else None


def admin_app(db, token=None):
    """The admin page of ``db`` as a WSGI app; ``token`` (required, at
    least 16 characters) is what a request must bring: a browser signs
    in with it once (then a cookie), a script sends ``Authorization:
    Bearer TOKEN``. Everything else gets a 401 (no credentials) or a 403
    (wrong ones)."""
    secret = auth.check_token(token, 'admin_app', required=True)
    csrf = auth.csrf_value(secret)

    def respond(request):
        path = request.path_info.rstrip('/') or '/'
        by_bearer = auth.bearer_matches(request.environ, secret)
        # The client's header, read in linear time (WebOb's reader takes
        # quadratic time over a long run without '=', and fails on bytes
        # that are not UTF-8): an invalid cookie is no cookie.
        cookie = cookie_value(request.environ.get('HTTP_COOKIE'),
                              auth.COOKIE_NAME)
        signed_in = by_bearer or auth.cookie_matches(
            {auth.COOKIE_NAME: cookie or ''}, secret)
        if path == '/login' and request.method == 'POST':
            if not auth.token_matches(_form_field(request, 'token') or '',
                                      secret):
                return _sign_in(403, 'That is not the admin token.')
            response = Response(status=303)
            response.location = request.application_url + '/'
            response.set_cookie(
                auth.COOKIE_NAME, auth.cookie_value(secret),
                path=request.script_name or '/', httponly=True,
                samesite='strict', secure=request.scheme == 'https')
            return response
        if not signed_in:
            if request.headers.get('Authorization') or cookie is not None:
                return _sign_in(403, 'Those credentials are not valid.')
            return _sign_in(401)
        if path in ('/sweep', '/pack'):
            if request.method != 'POST':
                return _page('Method not allowed', '<p>POST only.</p>', 405)
            if not by_bearer and not auth.csrf_matches(
                    _form_field(request, 'csrf'), secret):
                return _page('Forbidden', '<p>The form is missing its'
                             ' CSRF field: reload the page.</p>', 403)
            if path == '/sweep':
                sweep_all(db)
            else:
                scheduled_pack(db, 0, force=True)
            # Then GET the page (reloading it does not post again).
            response = Response(status=303)
            response.location = (request.application_url + '/?done='
                                 + ('sweep' if path == '/sweep' else 'pack'))
            return response
        if path != '/':
            return _page('Not found', '<p>No such page.</p>', 404)
        try:
            figures = collect(db)
        except NoSessionSite:
            return _page('zodbsession admin', '<p>The database holds no'
                         ' sessions yet.</p>')
        done = _form_field(request, 'done', posted=False)
        note = {'sweep': 'Swept.', 'pack': 'Packed.'}.get(done, '')
        return _page('zodbsession admin', render_figures(figures, csrf,
                                                          note))

    def app(environ, start_response):
        return respond(Request(environ))(environ, start_response)

    return app
