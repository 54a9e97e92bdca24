"""Settings tables written from the zope.schema fields, so they cannot go
stale: a field added to interfaces.py appears in the docs by itself.

``.. zodbsession-settings:: zodbsession.interfaces.ICookieClientIdManager``
    a table of the interface's schema fields: name, type, default,
    bounds, description. ``:defaults-from: module.Class`` takes the
    defaults from an instance made with no arguments.

``.. zodbsession-interface:: zodbsession.interfaces.ISession``
    an interface as a class: its docstring, its methods with their
    signatures and docstrings, its attributes and fields (autodoc does
    not document zope.interface interfaces).

``.. zodbsession-container-defaults:: module.Class module.Other ...``
    the timeout, resolution and lifetime each container class starts
    with (its constructor's defaults).
"""
import importlib
import inspect

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective
from zope import schema
from zope.schema.interfaces import IField


def _resolve(dotted):
    module, _, name = dotted.rpartition('.')
    return getattr(importlib.import_module(module), name)


def _literal(value):
    return f'``{value!r}``'


def _type(field):
    if isinstance(field, schema.Bool):
        kind = 'bool'
    elif isinstance(field, schema.Int):
        kind = 'int'
    elif isinstance(field, schema.Choice):
        kind = 'str (a choice)'
    elif isinstance(field, schema.ASCIILine):
        kind = 'str (ASCII, one line)'
    elif isinstance(field, schema.TextLine):
        kind = 'str (one line)'
    else:
        kind = type(field).__name__
    if not field.required and field.default is None:
        kind += ' or None'
    return kind


def _bounds(field):
    parts = []
    low = getattr(field, 'min', None)
    high = getattr(field, 'max', None)
    if low is not None and high is not None:
        parts.append(f'{low} to {high}')
    elif low is not None:
        parts.append(f'>= {low}')
    elif high is not None:
        parts.append(f'<= {high}')
    low = getattr(field, 'min_length', 0) or 0
    high = getattr(field, 'max_length', None)
    if high is not None:
        parts.append(f'{low} to {high} characters')
    elif low:
        parts.append(f'at least {low} characters')
    if isinstance(field, schema.Choice) and field.vocabulary is not None:
        values = [term.value for term in field.vocabulary]
        parts.append('one of ' + ', '.join(_literal(v) for v in values))
    return '; '.join(parts) or '\u2014'


def _description(field):
    text = ' '.join(str(field.description or '').split())
    title = ' '.join(str(field.title or '').split())
    return text or title or '\u2014'


def _list_table(header, rows, widths):
    lines = ['.. list-table::', '   :header-rows: 1',
             f'   :widths: {" ".join(str(w) for w in widths)}',
             '   :class: settings', '']
    for row in [header] + rows:
        first = True
        for cell in row:
            lines.append(('   * - ' if first else '     - ') + cell)
            first = False
    return lines


def settings_rows(interface, example=None):
    """(name, type, default, bounds, description) of every schema field
    of ``interface`` (its bases' included), in the interface's order.

    The default is ``example``'s value where it has one (an object made
    with no arguments: what a user gets), else the field's."""
    fields = [(name, interface[name]) for name in interface.names(all=True)
              if IField.providedBy(interface[name])]
    fields.sort(key=lambda item: item[1].order)
    return [(f'``{name}``', _type(field),
             _literal(getattr(example, name, field.default)),
             _bounds(field), _description(field))
            for name, field in fields]


def container_rows(classes):
    rows = []
    for cls in classes:
        parameters = inspect.signature(cls).parameters
        row = [f':class:`~{cls.__module__}.{cls.__qualname__}`']
        for name in ('timeout', 'resolution', 'lifetime'):
            parameter = parameters.get(name)
            row.append('\u2014' if parameter is None
                       else _literal(parameter.default))
        rows.append(row)
    return rows


class _Table(SphinxDirective):
    has_content = False

    def parse(self, lines):
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source=''), 0, container)
        return container.children


class SettingsTable(_Table):
    required_arguments = 1
    option_spec = {'defaults-from': str}

    def run(self):
        interface = _resolve(self.arguments[0])
        example = None
        if 'defaults-from' in self.options:
            example = _resolve(self.options['defaults-from'])()
        return self.parse(_list_table(
            ['Setting', 'Type', 'Default', 'Bounds', 'What it does'],
            [list(row) for row in settings_rows(interface, example)],
            [14, 12, 10, 16, 48]))


class ContainerDefaults(_Table):
    required_arguments = 1
    final_argument_whitespace = True

    def run(self):
        classes = [_resolve(name) for name in self.arguments[0].split()]
        return self.parse(_list_table(
            ['Container', 'timeout', 'resolution', 'lifetime'],
            container_rows(classes), [40, 20, 20, 20]))


def _indented(text, prefix):
    text = inspect.cleandoc(text or '')
    return [(prefix + line) if line.strip() else '' for line in
            text.splitlines()]


def interface_lines(dotted):
    """The RST of one interface: a py:class with its own members (those
    of its bases are documented on the bases)."""
    interface = _resolve(dotted)
    bases = ', '.join(f':class:`~{base.__module__}.{base.__name__}`'
                      for base in interface.__bases__
                      if base.__name__ != 'Interface')
    lines = [f'.. py:class:: {interface.__name__}',
             f'   :module: {interface.__module__}', '']
    if bases:
        lines += [f'   Extends {bases}.', '']
    lines += _indented(interface.__doc__, '   ') + ['']
    members = [(name, interface[name]) for name in interface.names()]
    members.sort(key=lambda item: getattr(item[1], 'order', 0))
    for name, member in members:
        if IField.providedBy(member):
            lines += [f'   .. py:attribute:: {name}', '',
                      f'      {_type(member)}, default'
                      f' {_literal(member.default)}; bounds:'
                      f' {_bounds(member)}. {_description(member)}', '']
        elif hasattr(member, 'getSignatureString'):
            lines += [f'   .. py:method:: {name}'
                      f'{member.getSignatureString()}', '']
            lines += _indented(member.__doc__, '      ') + ['']
        else:
            lines += [f'   .. py:attribute:: {name}', '']
            lines += _indented(member.__doc__, '      ') + ['']
    return lines


class InterfaceDescription(_Table):
    required_arguments = 1

    def run(self):
        return self.parse(interface_lines(self.arguments[0]))


def setup(app):
    app.add_directive('zodbsession-interface', InterfaceDescription)
    app.add_directive('zodbsession-settings', SettingsTable)
    app.add_directive('zodbsession-container-defaults', ContainerDefaults)
    return {'parallel_read_safe': True, 'parallel_write_safe': True,
            'version': '1'}
