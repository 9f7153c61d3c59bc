"""The depletion experiment as a script: ``python experiments/depletion.py [options]``.

Same as ``neutrosim deplete`` (see ``neutrosim deplete --help``): control versus
neutrophil-targeting arms with paired replicates, statistics, figures and report.
"""

import sys

from sim.cli import main

if __name__ == "__main__":  # the guard matters: worker processes re-import this file
    sys.exit(main(["deplete", *sys.argv[1:]]))
