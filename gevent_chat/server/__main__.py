"""``python -m gevent_chat.server``."""

import sys

from .app import main

sys.exit(main())
