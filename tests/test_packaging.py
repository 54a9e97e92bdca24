"""What an installed zodbsession (a wheel, an egg, a checkout) holds.

Run against the built wheel by ``.ci/wheel-check``: a module or data file
left out of the distribution fails here first.
"""
import importlib
import importlib.metadata
import importlib.resources
import pkgutil

import zodbsession

# Run as programs, not imported: importing them would run the command.
PROGRAMS = {'zodbsession.__main__'}


def all_modules():
    return sorted(
        info.name for info in pkgutil.walk_packages(
            zodbsession.__path__, prefix='zodbsession.')
        if info.name not in PROGRAMS)


def test_every_module_imports():
    names = all_modules()
    # The layers the design names are all there.
    for expected in ('zodbsession.wsgi', 'zodbsession.cli',
                     'zodbsession.demo.app', 'zodbsession.pyramid',
                     'zodbsession.testing.coldstart'):
        assert expected in names
    for name in names:
        importlib.import_module(name)


def test_the_version_is_the_distributions():
    assert zodbsession.__version__ == importlib.metadata.version(
        'zodbsession')


def test_configure_zcml_is_installed():
    zcml = importlib.resources.files('zodbsession') / 'configure.zcml'
    assert zcml.is_file()
    assert '<configure' in zcml.read_text()


def test_the_readme_names_this_version():
    import os
    import re
    readme = os.path.join(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))), 'README.rst')
    with open(readme, encoding='utf-8') as text:
        named = re.search(r'^Version (\S+) ', text.read(), re.M)
    assert named and named.group(1) == zodbsession.__version__
