"""HTML for the demo: string templates; every value goes through escape()."""
import html
import string

# theme -> (background, text, card, border, accent); the name is also the
# CSS color-scheme, so form controls follow the theme.
THEMES = {'light': ('#fbfbf8', '#1d232a', '#ffffff', '#d6d9dc', '#2b6cb0'),
          'dark': ('#15191e', '#e6e8ea', '#20262d', '#39414a', '#7ab3ef')}

PAGE = string.Template("""<!DOCTYPE html>
<html lang="$lang">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<style>
:root { color-scheme: $scheme; }
body { font: 16px/1.45 system-ui, sans-serif; margin: 0; padding: 1.5rem;
       background: $background; color: $text; }
main { max-width: 56rem; margin: 0 auto; }
h1 { font-size: 1.6rem; margin: 0 0 .25rem; }
.sub { margin: 0 0 1.25rem; opacity: .75; }
.cards { display: grid; gap: 1rem;
         grid-template-columns: repeat(auto-fit, minmax(16rem, 1fr));
         margin-bottom: 1rem; }
section { background: $card; border: 1px solid $border; border-radius: 8px;
          padding: 1rem 1.25rem; }
h2 { font-size: 1.1rem; margin: 0 0 .6rem; }
.big { font-size: 2.4rem; font-weight: 600; color: $accent; margin: 0; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .35rem .5rem; vertical-align: top;
         border-bottom: 1px solid $border; }
th { font-weight: 600; }
code { font-family: ui-monospace, monospace; font-size: .9em; }
form { margin: .5rem 0 0; display: flex; flex-wrap: wrap; gap: .5rem;
       align-items: center; }
form.inline { display: inline-flex; margin: 0; }
input, select, button { font: inherit; padding: .25rem .5rem; }
button { background: $accent; color: #fff; border: 0; border-radius: 4px;
         cursor: pointer; }
button.quiet { background: transparent; color: $accent;
               border: 1px solid $border; }
.error { border-color: #c53030; }
.muted { opacity: .7; }
</style>
</head>
<body>
<main>
$body
</main>
</body>
</html>
""")

# The home page; every value is HTML already (escaped by the view).
HOME = string.Template("""<h1>$greeting!</h1>
<p class="sub">zodbsession demo &middot; client id
<code id="client-id">$client_id</code>&hellip;</p>
<div class="cards">
<section id="counter-card"><h2>Page counter</h2>
<p class="big" id="counter">$counter</p>
<p class="muted">views of this page in this session</p></section>
<section id="cart"><h2>Shopping cart</h2>$cart</section>
<section id="prefs"><h2>Preferences</h2>$prefs</section>
<section id="auth"><h2>Login</h2>$auth</section>
</div>
<section id="data"><h2>Session data</h2>$data</section>
""")


def escape(value):
    return html.escape(str(value), quote=True)


def page(title, body, theme='light', lang='en'):
    """A whole page; ``body`` is HTML already (built from escaped parts)."""
    if theme not in THEMES:
        theme = 'light'
    background, text, card, border, accent = THEMES[theme]
    return PAGE.substitute(
        scheme=theme,
        title=escape(title), body=body, lang=escape(lang),
        background=background, text=text, card=card, border=border,
        accent=accent)


def csrf_field(token):
    return (f'<input type="hidden" name="csrf_token"'
            f' value="{escape(token)}">')


def form(action, token, fields, button, css_class='', quiet=False):
    """A POST form; ``fields`` is HTML already."""
    cls = f' class="{escape(css_class)}"' if css_class else ''
    button_cls = ' class="quiet"' if quiet else ''
    return (f'<form method="post" action="{escape(action)}"{cls}>'
            f'{csrf_field(token)}{fields}'
            f'<button type="submit"{button_cls}>{escape(button)}</button>'
            f'</form>')


def select(name, options, selected=None, label=None):
    """A <select>; ``options`` is [(value, text)]."""
    items = ''.join(
        f'<option value="{escape(value)}"'
        f'{" selected" if value == selected else ""}>{escape(text)}</option>'
        for value, text in options)
    label_html = f'<label for="{escape(name)}">{escape(label)}</label> ' \
        if label else ''
    return (f'{label_html}<select id="{escape(name)}" name="{escape(name)}">'
            f'{items}</select>')


def table(headers, rows, empty='nothing yet'):
    """A table of escaped cells; ``rows`` is [[cell, ...]] of HTML."""
    if not rows:
        return f'<p class="muted">{escape(empty)}</p>'
    head = ''.join(f'<th>{escape(h)}</th>' for h in headers)
    body = ''.join(
        '<tr>' + ''.join(f'<td>{cell}</td>' for cell in row) + '</tr>'
        for row in rows)
    return (f'<table><thead><tr>{head}</tr></thead>'
            f'<tbody>{body}</tbody></table>')


def message_page(status_title, message, home_url, theme='light'):
    body = (f'<h1>{escape(status_title)}</h1><p>{escape(message)}</p>'
            f'<p><a href="{escape(home_url)}">Back to the demo</a></p>')
    return page(status_title, body, theme)
