"""`python -m slmcore` is the `slmcore` command."""

import sys

from slmcore.cli import main

sys.exit(main())
