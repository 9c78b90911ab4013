"""`python -m tray_alerts`."""
import sys

from .cli import main

sys.exit(main())
