"""`python -m agent` runs the `ecs-medic` command."""

import sys

from agent.cli import main

sys.exit(main())
