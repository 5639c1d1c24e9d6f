"""C{python -m jabberd.client}: the C{jabberd-client} command line."""

import sys

from jabberd.client.cli import main

sys.exit(main())
