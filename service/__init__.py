"""The strawfire service: FastAPI app, database, regions, incidents, alerts, dispatch and statistics.

``service`` composes ``detector``, ``satellite`` and ``video``; none of them imports it.
"""
