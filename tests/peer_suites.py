"""Run the peers' own test suites against zodbsession, and against the peer.

Nothing of the peers' files is copied here: their tests are read at test
time from their released distributions (the installed package, or its
sdist, which ``pip download`` fetches once into a cache directory).

For zope.session, every example of its doctests (``docs/api.rst`` and the
docstrings of ``zope.session.session`` and ``zope.session.http``) is one
test, run in order in the namespace of its doctest, and every test of its
``tests.py`` is one test. Run "against zodbsession", the names of the
``zope.session.*`` modules are those zodbsession offers (its top-level
names): imports are redirected, nothing else is changed.
"""
import ast
import contextlib
import doctest
import importlib
import importlib.metadata
import io
import logging
import os
import re
import subprocess
import sys
import tarfile
import types
import unittest

import transaction

# Where sdists are downloaded and unpacked, once.
CACHE_DIR = os.environ.get(
    'ZODBSESSION_PEER_CACHE',
    os.path.join(os.path.expanduser('~'), '.cache', 'zodbsession-peers'))

ORIGINAL = 'original'
ZODBSESSION = 'zodbsession'
IMPLEMENTATIONS = (ZODBSESSION, ORIGINAL)


class PeerUnavailable(RuntimeError):
    """The peer's distribution could not be found or fetched."""


def installed_version(distribution):
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise PeerUnavailable(
            f'{distribution} is not installed: install the test extra'
            f" (pip install -e '.[test]')") from None


def _normalized(name):
    """A distribution's name as sdist file names spell it (PEP 503)."""
    return re.sub(r'[-_.]+', '_', name).lower()


def sdist(distribution, version):
    """The directory of ``distribution==version``'s unpacked sdist,
    downloaded with pip into CACHE_DIR the first time."""
    unpacked = os.path.join(CACHE_DIR, f'{distribution}-{version}')
    if os.path.isdir(unpacked):
        return unpacked
    downloads = os.path.join(CACHE_DIR, 'downloads')
    os.makedirs(downloads, exist_ok=True)
    command = [sys.executable, '-m', 'pip', 'download', '--no-deps',
               '--no-binary', ':all:', '--disable-pip-version-check',
               '-q', '-d', downloads, f'{distribution}=={version}']
    result = subprocess.run(command, capture_output=True, text=True,
                            timeout=600)
    suffix = f'-{version}.tar.gz'
    archives = [name for name in os.listdir(downloads)
                if name.endswith(suffix)
                and _normalized(name[:-len(suffix)])
                == _normalized(distribution)]
    if not archives:
        raise PeerUnavailable(
            f'cannot fetch the sdist of {distribution}=={version}, needed'
            f' to run its own tests: {" ".join(command)} said:\n'
            f'{result.stdout}{result.stderr}')
    # Unpacked beside the cache, then moved in place: a run beside this
    # one sees the whole tree or none of it.
    import shutil
    import tempfile
    partial = tempfile.mkdtemp(prefix=f'{distribution}-', dir=CACHE_DIR)
    try:
        with tarfile.open(os.path.join(downloads, archives[0])) as archive:
            top = archive.getnames()[0].split('/')[0]
            if hasattr(tarfile, 'data_filter'):
                archive.extractall(partial, filter='data')
            else:   # pragma: no cover - Python before 3.11.4
                archive.extractall(partial)
        try:
            os.replace(os.path.join(partial, top), unpacked)
        except OSError:
            if not os.path.isdir(unpacked):     # not another run's copy
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return unpacked


# -- redirecting zope.session's names to zodbsession's -------------------

ZOPE_SESSION_MODULES = ('zope.session.interfaces', 'zope.session.session',
                        'zope.session.http')


def _own_names(module):
    """The names ``module`` defines itself or imports from zope.session:
    the names a redirect replaces (its other imports stay)."""
    with open(module.__file__, encoding='utf-8') as f:
        tree = ast.parse(f.read())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(target.id for target in node.targets
                         if isinstance(target, ast.Name))
        elif (isinstance(node, ast.ImportFrom) and node.module
              and node.module.startswith('zope.session')):
            names.update(alias.asname or alias.name for alias in node.names)
    return names


def _redirected_module(name, source):
    """A stand-in for module ``name`` holding what zodbsession offers of
    the names the peer's module has (absent ones stay absent)."""
    original = importlib.import_module(name)
    stand_in = types.ModuleType(name, original.__doc__)
    for attribute in _own_names(original):
        if hasattr(source, attribute):
            setattr(stand_in, attribute, getattr(source, attribute))
    return stand_in


class Redirect:
    """``zope.session.*`` names as zodbsession offers them."""

    def __init__(self):
        import zodbsession
        import zodbsession.interfaces
        self.modules = {
            name: _redirected_module(
                name, zodbsession.interfaces
                if name.endswith('.interfaces') else zodbsession)
            for name in ZOPE_SESSION_MODULES}
        # The package: zodbsession itself as zope.session code sees it
        # (xmlconfig.file('configure.zcml', zope.session) loads ours).
        package = types.ModuleType('zodbsession', zodbsession.__doc__)
        package.__dict__.update(
            (key, value) for key, value in vars(zodbsession).items()
            if not isinstance(value, types.ModuleType))
        for key in ('__file__', '__path__', '__spec__'):
            setattr(package, key, getattr(zodbsession, key))
        for name, module in self.modules.items():
            setattr(package, name.rsplit('.', 1)[1], module)
        self.modules['zope.session'] = package
        # The qualified names a traceback prints, ours -> the peer's; and
        # the loggers named after modules, the peer's -> ours.
        self.names = {}
        self.loggers = {}
        for name, module in self.modules.items():
            if name == 'zope.session':
                continue
            for attribute, value in vars(module).items():
                if isinstance(value, type):
                    ours = f'{value.__module__}.{value.__qualname__}'
                    self.names[ours] = f'{name}.{attribute}'
                if callable(value) and getattr(
                        value, '__module__', '').startswith('zodbsession'):
                    self.loggers.setdefault(name, set()).add(
                        value.__module__)

    def globs(self, peer_module):
        """The doctest namespace of ``peer_module``, redirected."""
        globs = dict(vars(peer_module))
        stand_in = self.modules[peer_module.__name__]
        for name in _own_names(peer_module):
            globs.pop(name, None)
            if hasattr(stand_in, name):
                globs[name] = getattr(stand_in, name)
        return globs

    def translate(self, text):
        for ours, theirs in self.names.items():
            text = text.replace(ours, theirs)
        return text

    @contextlib.contextmanager
    def active(self):
        import zope
        forwarders = []
        for peer_name, our_names in self.loggers.items():
            for our_name in sorted(our_names):
                forwarder = _Forward(logging.getLogger(peer_name))
                logging.getLogger(our_name).addHandler(forwarder)
                forwarders.append((our_name, forwarder))
        saved = {name: sys.modules.get(name) for name in self.modules}
        saved_attribute = zope.__dict__.get('session')
        sys.modules.update(self.modules)
        zope.session = self.modules['zope.session']
        try:
            yield
        finally:
            for name, module in saved.items():
                if module is None:
                    sys.modules.pop(name, None)
                else:
                    sys.modules[name] = module
            if saved_attribute is None:
                zope.__dict__.pop('session', None)
            else:
                zope.session = saved_attribute
            for our_name, forwarder in forwarders:
                logging.getLogger(our_name).removeHandler(forwarder)


class _Forward(logging.Handler):
    """Hands our module's log records to the logger named after the
    peer's module, where the peer's tests listen."""

    def __init__(self, target):
        super().__init__()
        self.target = target

    def emit(self, record):
        self.target.handle(record)


class _Checker(doctest.OutputChecker):
    """Compares output with our qualified names spelt as the peer's."""

    def __init__(self, redirect):
        self.redirect = redirect

    def check_output(self, want, got, optionflags):
        if self.redirect is not None:
            got = self.redirect.translate(got)
        return super().check_output(want, got, optionflags)


# -- the zope.session suite ------------------------------------------------

# Sphinx's doctest builder (how zope.session runs docs/api.rst) defaults.
SPHINX_FLAGS = (doctest.ELLIPSIS | doctest.IGNORE_EXCEPTION_DETAIL
                | doctest.DONT_ACCEPT_TRUE_FOR_1)
# zope.session's test_suite(): no flags for session.py, these for http.py.
MODULE_FLAGS = {
    'zope.session.session': 0,
    'zope.session.http': doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS,
}


def _reset():
    from zope.testing import cleanup
    transaction.abort()
    cleanup.cleanUp()


class ZopeSessionSuite:
    """zope.session 6.0's tests, as (test id, runner) pairs."""

    distribution = 'zope.session'

    def __init__(self):
        self.version = installed_version(self.distribution)
        self.doctests = {}          # doctest name -> (DocTest, flags)
        self._redirect = None
        self._active = None         # (implementation, doctest name)
        self._globs = None
        for module_name, flags in MODULE_FLAGS.items():
            module = importlib.import_module(module_name)
            finder = doctest.DocTestFinder()
            for test in sorted(finder.find(module), key=lambda t: t.name):
                if test.examples:
                    self.doctests[test.name] = (test, flags, module)
        api = os.path.join(sdist(self.distribution, self.version),
                           'docs', 'api.rst')
        with open(api, encoding='utf-8') as f:
            text = f.read()
        test = doctest.DocTestParser().get_doctest(
            text, {}, 'docs/api.rst', api, 0)
        self.doctests['docs/api.rst'] = (test, SPHINX_FLAGS, None)
        self.tests_module = importlib.import_module('zope.session.tests')

    @property
    def redirect(self):
        if self._redirect is None:
            self._redirect = Redirect()
        return self._redirect

    def example_ids(self):
        """[(doctest name, example index, first source line)]."""
        return [(name, index, example.source.splitlines()[0])
                for name, (test, _flags, _module) in self.doctests.items()
                for index, example in enumerate(test.examples)]

    def unit_test_names(self):
        loader = unittest.defaultTestLoader
        suite = loader.loadTestsFromModule(self.tests_module)
        return sorted(test.id().rsplit('.', 2)[-2] + '.'
                      + test.id().rsplit('.', 1)[-1]
                      for test in _flatten(suite))

    # Running ------------------------------------------------------------

    def _context(self, implementation):
        if implementation == ZODBSESSION:
            return self.redirect.active()
        return contextlib.nullcontext()

    def _enter_doctest(self, implementation, name):
        if self._active == (implementation, name):
            return
        self.finish()
        test, _flags, module = self.doctests[name]
        if module is None:
            globs = {'__name__': '__main__'}
        elif implementation == ZODBSESSION:
            globs = self.redirect.globs(module)
        else:
            globs = dict(vars(module))
        self._globs = globs
        self._active = (implementation, name)

    def finish(self):
        """Clean up after the doctest that ran last (as the peer does)."""
        if self._active is not None:
            _reset()
            self._globs.clear()
            self._active = self._globs = None

    def run_example(self, implementation, name, index):
        """Run one example in its doctest's namespace: None if it passed,
        else doctest's report."""
        self._enter_doctest(implementation, name)
        test, flags, _module = self.doctests[name]
        example = test.examples[index]
        one = doctest.DocTest([example], self._globs, test.name,
                              test.filename, test.lineno, test.docstring)
        one.globs = self._globs     # shared by the doctest's examples
        checker = _Checker(self.redirect if implementation == ZODBSESSION
                           else None)
        runner = doctest.DocTestRunner(checker=checker, optionflags=flags,
                                       verbose=False)
        out = io.StringIO()
        with self._context(implementation):
            runner.run(one, out=out.write, clear_globs=False)
        return out.getvalue() or None

    def run_unit_test(self, implementation, name):
        """Run one test of tests.py: None if it passed, else the report."""
        self.finish()
        class_name, method = name.split('.')
        case = getattr(self.tests_module, class_name)(method)
        result = unittest.TestResult()
        with self._context(implementation):
            try:
                case.run(result)
            finally:
                _reset()
        problems = result.errors + result.failures
        return '\n'.join(text for _test, text in problems) or None


def _flatten(suite):
    for test in suite:
        if isinstance(test, unittest.TestSuite):
            yield from _flatten(test)
        else:
            yield test


# -- the Pyramid suite -----------------------------------------------------

PYRAMID_MODULES = ('test_session', 'test_testing', 'test_csrf')


def load_pyramid_test_module(name):
    """A fresh copy of Pyramid's ``tests/<name>.py`` from its sdist (one
    per use, so that overriding its names changes nothing else)."""
    import importlib.util
    version = installed_version('pyramid')
    path = os.path.join(sdist('pyramid', version), 'tests', f'{name}.py')
    # Configurator() finds its package through sys.modules.
    package = sys.modules.get('pyramid_peer_tests')
    if package is None:
        package = types.ModuleType('pyramid_peer_tests')
        package.__path__ = [os.path.dirname(path)]
        sys.modules['pyramid_peer_tests'] = package
    spec = importlib.util.spec_from_file_location(
        f'pyramid_peer_tests.{name}', path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class PyramidHost:
    """A Pyramid application with ``config.include('zodbsession.pyramid')``
    and a real database (FileStorage in a temporary directory), whose
    sessions stand in for the ones Pyramid's tests make."""

    def __init__(self, config=None):
        import tempfile

        from pyramid.config import Configurator

        from zodbsession.pyramid import session_factory
        from zodbsession.testing import filestorage_db
        self._directory = tempfile.TemporaryDirectory(
            prefix='zodbsession-pyramid-')
        self._db_context = filestorage_db(self._directory.name)
        self.db = self._db_context.__enter__()
        self.config = config if config is not None else Configurator()
        # The factory first: pyramid.testing.setUp's configurator runs
        # each action at once, and the include's completion would open
        # the database of the default settings.
        self.config.set_session_factory(session_factory(db=self.db))
        self.config.include('zodbsession.pyramid')
        # Builds the tweens: zodbsession's marks the registry as hosted.
        self.config.make_wsgi_app()
        self.requests = []

    def session(self, request):
        """``request.session``, zodbsession's, bound to ``request``."""
        from pyramid.interfaces import ISessionFactory
        request.registry = self.config.registry
        from zodbsession.pyramid import PyramidSession
        session = self.config.registry.getUtility(ISessionFactory)(request)
        assert isinstance(session, PyramidSession), session
        request.session = session
        self.requests.append(request)
        return session

    def request(self, **kw):
        from pyramid import testing
        request = testing.DummyRequest(**kw)
        self.session(request)
        return request

    def close(self):
        transaction.abort()
        for request in self.requests:
            for callback in getattr(request, 'finished_callbacks', ()):
                callback(request)
        self.requests = []
        self._db_context.__exit__(None, None, None)
        self._directory.cleanup()
