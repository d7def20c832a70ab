"""`python -m cnnlab.cli` is `cnnlab`."""
import sys

from . import main

sys.exit(main())
