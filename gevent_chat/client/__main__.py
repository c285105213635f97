"""``python -m gevent_chat.client``."""

import sys

from .app import main

sys.exit(main())
