import sys

from edgecnn.agent.run import main

sys.exit(main())
