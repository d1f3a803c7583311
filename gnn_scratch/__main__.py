"""``python -m gnn_scratch`` is the ``gnn-scratch`` command."""
import sys

from .cli import main

sys.exit(main())
