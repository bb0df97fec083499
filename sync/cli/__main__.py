"""`python -m icp_engine.sync.cli`: the `icp` command without its console script."""

from icp_engine.sync.cli.main import main

main()
