"""``python -m zodbsession``: the ``zodbsession`` command."""
import sys

from zodbsession.cli import main

sys.exit(main())
