"""Sphinx configuration of zodbsession's documentation.

Built in CI with ``sphinx-build -W --keep-going -b html docs
docs/_build/html``: every warning fails the build. No intersphinx: CI
reaches no documentation site, so nothing here may need the network.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# The checkout's package first (a fresh clone builds its own docs), then
# the local extension that writes the settings tables.
sys.path.insert(0, os.path.join(HERE, '..', 'src'))
sys.path.insert(0, os.path.join(HERE, '_ext'))

import zodbsession  # noqa: E402

project = 'zodbsession'
author = 'the zodbsession contributors'
copyright = 'the zodbsession contributors, under the ZPL 2.1'
release = zodbsession.__version__
version = '.'.join(release.split('.')[:2])

extensions = [
    'sphinx.ext.autodoc',
    'zodbsession_settings',
]

root_doc = 'index'
exclude_patterns = ['_build']
# Code in ``double backquotes`` is a literal; single backquotes are the
# default role, which would make a warning-free build depend on guessing.
default_role = 'literal'
nitpicky = False
# ``::`` blocks are mostly shell commands and settings: shown plain.
# (Examples with >>> are highlighted as Python sessions all the same.)
highlight_language = 'none'

autodoc_member_order = 'bysource'
# The sidebar lists pages and sections, not every documented function.
toc_object_entries = False
# Each directive in api.rst names the members it shows.
autodoc_default_options = {}

html_theme = 'alabaster'
html_static_path = ['_static']
html_css_files = ['custom.css']
html_title = f'zodbsession {release}'
html_short_title = 'zodbsession'
html_show_sourcelink = False
html_theme_options = {
    'description': 'Namespaced, transactional, server-side sessions on '
                   'ZODB and the Zope component architecture.',
    'fixed_sidebar': False,
    'page_width': '1100px',
    'sidebar_width': '230px',
    'show_powered_by': False,
}
html_sidebars = {
    '**': ['about.html', 'navigation.html', 'searchbox.html'],
}
