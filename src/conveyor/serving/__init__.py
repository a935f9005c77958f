"""Serving models from the registry (issue 7, in progress): today the wire formats.

``conveyor.serving._protocol`` decodes Open Inference Protocol v2 and MLflow scoring requests
into DataFrames, and encodes predictions back; the HTTP server, hot swap, canary and
shadow traffic build on it.
"""
