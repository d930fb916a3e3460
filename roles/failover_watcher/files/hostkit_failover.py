#!/usr/bin/python3
"""hostkit-failover: the entry point (roles/failover_watcher installs it next to the
module_utils files it imports). The program is module_utils/failover_watcher.py."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))

from module_utils.failover_watcher import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
