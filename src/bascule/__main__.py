import sys

from bascule.cli import main

sys.exit(main())
