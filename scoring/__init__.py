"""Scoring: canonical accounts in; score, tier, segment, reasons, routing out; learning the ICP.

Never imports `connectors` or `sync`.
"""
