"""Prints each NAME==VERSION argument whose package is not installed at that
version in this Python: what check-deploy must still install.
"""

import sys
from importlib.metadata import PackageNotFoundError, version

for spec in sys.argv[1:]:
    name, wanted = spec.split("==")
    try:
        found = version(name)
    except PackageNotFoundError:
        found = None
    if found != wanted:
        print(spec)
