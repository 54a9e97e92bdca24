import os
import re

from setuptools import find_packages
from setuptools import setup


HERE = os.path.abspath(os.path.dirname(__file__))


def read(*names):
    path = os.path.join(HERE, *names)
    if not os.path.exists(path):
        return ''
    with open(path, encoding='utf-8') as f:
        return f.read()


def version():
    """zodbsession.__version__, read without importing the package (its
    dependencies are not installed yet)."""
    match = re.search(r"^__version__ = '([^']+)'$",
                      read('src', 'zodbsession', '__init__.py'), re.M)
    return match.group(1)


# RelStorage's own ``[postgresql]`` extra requires ``psycopg2`` (on
# CPython), which PyPI ships only as a source distribution: building it
# needs a C compiler, ``pg_config`` and the libpq headers.  RelStorage's
# psycopg2 driver only imports the ``psycopg2`` module, which the
# ``psycopg2-binary`` wheel provides as well, so we depend on that instead.
RELSTORAGE = [
    'RelStorage>=3.5',
    'psycopg2-binary>=2.8',
]

PYRAMID = [
    'pyramid>=2.0',
    'pyramid_tm',
    'pyramid_retry',
]

FLASK = ['Flask>=2.3']

# The middleware runs storage work in worker threads through anyio (which
# Starlette and FastAPI use); starlette itself is only for the tests.
ASGI = ['anyio>=3.7']

EXTRAS = {
    # What ``zodbsession serve`` (the demo, ``make serve``) needs beyond
    # install_requires: ZEO, for ``--db zeo://...``.
    'serve': ['ZEO>=5.4'],
    'zeo': ['ZEO>=5.4'],
    'relstorage': RELSTORAGE,
    'publisher': ['zope.publisher>=6.0'],
    'zcml': ['zope.configuration>=5.0'],
    'templates': [
        'zope.pagetemplate>=4.0',
        'zope.traversing>=4.0',
        'zope.publisher>=6.0',
    ],
    'pyramid': PYRAMID,
    'metrics': ['prometheus_client>=0.17'],
    # zodbsession.beaker is Beaker's API on zodbsession: nothing of Beaker.
    'beaker': [],
    'flask': FLASK,
    'asgi': ASGI,
    # The documentation (docs/, built by .ci/run with sphinx-build -W).
    'docs': ['Sphinx>=7.0'],
    'bench': [
        'zope.session==6.0',
        'Beaker>=1.12',
        'pyramid>=2.0',
        'matplotlib',
        'Flask-Session>=0.5',
        'starlette>=0.27',
    ] + FLASK + ASGI,
    'test': [
        'pytest>=7.0',
        'hypothesis>=6.0',
        'WebTest>=3.0',
        'zope.session>=6.0',
        'ZEO>=5.4',
        'zope.publisher>=6.0',
        'zope.configuration>=5.0',
        'zope.pagetemplate>=4.0',
        'zope.traversing>=4.0',
        'Beaker>=1.12',
        'PasteDeploy>=2.0',
        'zope.testing>=4.0',
        'prometheus_client>=0.17',
        'starlette>=0.27',
        'httpx>=0.24',
        'uvicorn>=0.23',
        'Sphinx>=7.0',
    ] + RELSTORAGE + PYRAMID + FLASK + ASGI,
}


def _union(*lists):
    seen = []
    for lst in lists:
        for req in lst:
            if req not in seen:
                seen.append(req)
    return seen


# 'all' is the union of every extra above ('bench' pins zope.session==6.0,
# the release this package is a superset of and compared against).
EXTRAS['all'] = _union(*[
    reqs for name, reqs in sorted(EXTRAS.items())
])


setup(
    name='zodbsession',
    version=version(),
    description=(
        'Server-side sessions on ZODB and the Zope component architecture '
        '(a superset of zope.session)'
    ),
    long_description=read('README.rst') + '\n\n' + read('CHANGES.rst'),
    long_description_content_type='text/x-rst',
    license='ZPL-2.1',
    keywords='session zodb zope wsgi asgi pyramid flask beaker starlette',
    classifiers=[
        'Development Status :: 3 - Alpha',
        'Framework :: ZODB',
        'Framework :: Zope :: 3',
        'Framework :: Pyramid',
        'Framework :: Flask',
        'Intended Audience :: Developers',
        # Only what CI runs (.ci/run): CPython 3.11.
        'Programming Language :: Python :: 3',
        'Programming Language :: Python :: 3 :: Only',
        'Programming Language :: Python :: 3.11',
        'Programming Language :: Python :: Implementation :: CPython',
        'Topic :: Internet :: WWW/HTTP :: Session',
        'Topic :: Internet :: WWW/HTTP :: WSGI :: Middleware',
    ],
    package_dir={'': 'src'},
    packages=find_packages('src'),
    include_package_data=True,
    package_data={
        '': ['*.zcml', '*.pt', '*.html', '*.css'],
    },
    zip_safe=False,
    # What CI runs and nothing else; widen it with the CI.
    python_requires='>=3.11, <3.12',
    install_requires=[
        'ZODB>=5.8',
        'persistent>=4.9',
        'BTrees>=4.11',
        'transaction>=3.0',
        'zope.interface>=5.0',
        'zope.component>=5.0',
        'zope.schema>=6.0',
        'zodburi>=2.5',
        'WebOb>=1.8',
        'waitress>=2.1',
        'cryptography>=41',
    ],
    extras_require=EXTRAS,
    entry_points={
        'console_scripts': [
            'zodbsession = zodbsession.cli:main',
        ],
        'paste.filter_app_factory': [
            'main = zodbsession.hosting.wsgi:make_filter',
        ],
    },
)
