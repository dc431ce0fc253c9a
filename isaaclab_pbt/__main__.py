import sys

from .results.cli import main

sys.exit(main())
