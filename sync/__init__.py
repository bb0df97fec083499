"""The sync loop and the `icp` command: pull, score, plan, write, remember.

Uses `connectors` and `scoring`; neither uses it.
"""
