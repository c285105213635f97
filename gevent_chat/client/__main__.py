"""``python -m gevent_chat.client``."""

import sys

from .cli import main

sys.exit(main())
