"""Small inline SVG charts: no script, nothing fetched from elsewhere."""
import html
import time

WIDTH, HEIGHT = 520, 180
MARGIN = 40


def _fmt_time(epoch, with_date=False):
    return time.strftime('%m-%d %H:%M' if with_date else '%H:%M',
                         time.gmtime(epoch))


def _frame(title, body, y_max):
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img"'
        f' viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}"'
        f' height="{HEIGHT}"><title>{html.escape(title)}</title>'
        f'<line x1="{MARGIN}" y1="{HEIGHT - 25}" x2="{WIDTH - 10}"'
        f' y2="{HEIGHT - 25}" class="axis"/>'
        f'<line x1="{MARGIN}" y1="10" x2="{MARGIN}" y2="{HEIGHT - 25}"'
        f' class="axis"/>'
        f'<text x="{MARGIN - 4}" y="16" class="tick" text-anchor="end">'
        f'{y_max}</text>'
        f'<text x="{MARGIN - 4}" y="{HEIGHT - 25}" class="tick"'
        f' text-anchor="end">0</text>{body}</svg>')


def line_chart(title, points):
    """``points``: [(epoch seconds, value)], oldest first."""
    if not points:
        return f'<p class="empty">{html.escape(title)}: no data yet.</p>'
    xs = [x for x, _ in points]
    y_max = max(1, max(y for _, y in points))
    x_min, x_span = xs[0], max(1, xs[-1] - xs[0])
    inner_w, inner_h = WIDTH - MARGIN - 10, HEIGHT - 35

    def at(x, y):
        return (MARGIN + (x - x_min) / x_span * inner_w,
                HEIGHT - 25 - y / y_max * inner_h)
    coordinates = ' '.join('%.1f,%.1f' % at(x, y) for x, y in points)
    dots = ''.join('<circle cx="%.1f" cy="%.1f" r="2.5" class="dot"/>'
                   % at(x, y) for x, y in points[-1:])
    labels = (f'<text x="{MARGIN}" y="{HEIGHT - 8}" class="tick">'
              f'{_fmt_time(xs[0], True)}</text>'
              f'<text x="{WIDTH - 10}" y="{HEIGHT - 8}" class="tick"'
              f' text-anchor="end">{_fmt_time(xs[-1], True)}</text>')
    body = (f'<polyline points="{coordinates}" class="line"'
            f' fill="none"/>{dots}{labels}')
    return _frame(title, body, y_max)


def bar_chart(title, bars):
    """``bars``: [(epoch seconds: the slice's end, count, expired)]."""
    if not bars:
        return f'<p class="empty">{html.escape(title)}: no slices.</p>'
    y_max = max(1, max(count for _, count, _ in bars))
    inner_w, inner_h = WIDTH - MARGIN - 10, HEIGHT - 35
    step = inner_w / len(bars)
    body = []
    for index, (end, count, expired) in enumerate(bars):
        height = count / y_max * inner_h
        x = MARGIN + index * step + 2
        body.append(
            f'<rect x="{x:.1f}" y="{HEIGHT - 25 - height:.1f}"'
            f' width="{max(1, step - 4):.1f}" height="{height:.1f}"'
            f' class="{"bar expired" if expired else "bar"}">'
            f'<title>until {_fmt_time(end, True)}: {count}</title></rect>')
        if len(bars) <= 12 or index % max(1, len(bars) // 8) == 0:
            body.append(
                f'<text x="{x + step / 2 - 2:.1f}" y="{HEIGHT - 8}"'
                f' class="tick" text-anchor="middle">{_fmt_time(end)}'
                f'</text>')
    return _frame(title, ''.join(body), y_max)
