#!/usr/bin/python3
"""hostkit-config-agent: the entry point (roles/config_agent installs it next to the
module_utils files it imports). The program is module_utils/config_agent.py."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))

from module_utils.config_agent import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
