"""The logger table of docs/deployment.rst names the loggers that say
what it quotes, at the level it gives: a user configures logging by
these names."""
import importlib
import inspect
import logging
import os
import re

import pytest

DOC = os.path.join(os.path.dirname(__file__), os.pardir, 'docs',
                   'deployment.rst')


def logger_rows():
    """(logger names, level, the message's fixed opening) of each row."""
    with open(DOC, encoding='utf-8') as document:
        text = document.read()
    after = text.split('\nLogging\n=======\n', 1)[1].split(
        '.. list-table::', 1)[1]
    # The table ends at the first line that is not indented.
    table = re.split(r'\n(?=\S)', after, maxsplit=1)[0]
    rows = re.split(r'\n   \* - ', table)[2:]    # the options, the header
    parsed = []
    for row in rows:
        loggers, level, message = re.split(r'\n     - ', row, maxsplit=2)
        names = re.findall(r'``([\w.]+)``', loggers)
        quoted = re.search(r'``(.+?)``', message, re.S).group(1)
        parsed.append((names, level.strip(), _opening(quoted)))
    return parsed


def _opening(message):
    """The message's first words (at most three) before any placeholder
    (``<error>``, ``n``, ``t``, ``'name'``, ``T``), a leading one skipped."""
    words = message.split()
    if words[0].startswith('<'):
        words = words[1:]
    opening = []
    for word in words[:3]:
        if word.startswith(('<', "'")) or word in ('n', 't', 'T'):
            break
        opening.append(word)
    return ' '.join(opening)


ROWS = logger_rows()


def test_the_table_was_read():
    assert len(ROWS) >= 10
    assert all(names and opening for names, _level, opening in ROWS)


@pytest.mark.parametrize('names, level, opening', ROWS,
                         ids=[opening[:40] for _n, _l, opening in ROWS])
def test_each_logger_says_its_message_at_its_level(names, level, opening):
    assert level in ('DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL')
    for name in names:
        module = importlib.import_module(name)
        loggers = [value for value in vars(module).values()
                   if isinstance(value, logging.Logger)]
        assert [logger.name for logger in loggers] == [name]
        # The module's source, its adjacent string literals joined.
        source = ' '.join(re.sub(r"""['"]\s*\n\s*f?['"]""", '',
                                 inspect.getsource(module)).split())
        assert logs_at(source, level, opening), (name, level, opening)


def logs_at(source, level, opening):
    """Whether ``source`` logs the message that starts with ``opening`` at
    ``level``: as the first argument of the call, or made first into a
    name that the call then formats."""
    call = rf"\.{level.lower()}\(\s*"
    message = rf"f?['\"](?:%s |\{{\w+\}} )?{re.escape(opening)}"
    if re.search(call + message, source):
        return True
    for name in re.findall(rf"(\w+) = {message}", source):
        if re.search(call + rf"['\"][^'\"]*['\"], {name}\b", source):
            return True
    return False


def test_a_level_is_tied_to_its_message():
    source = ("log.info('retrying %s', 1) log.error('giving up') "
              "text = f'cannot store {k}' log.warning('%s (%s)', text, e)")
    assert logs_at(source, 'INFO', 'retrying')
    assert not logs_at(source, 'ERROR', 'retrying')
    assert logs_at(source, 'WARNING', 'cannot store')
    assert not logs_at(source, 'ERROR', 'cannot store')
