import sys

from image_builders.cli import main

sys.exit(main())
