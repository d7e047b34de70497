"""``python -m worker.cli``: the ``replyguard`` command."""

import sys

from worker.cli import main

sys.exit(main())
