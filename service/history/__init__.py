"""Hotspot history: past satellite detections imported from FIRMS archives, evidence for the persistence rule only."""
