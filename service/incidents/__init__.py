"""Incidents: observations fused into one fire, assigned to a unit, and walked through the dispatch lifecycle."""
