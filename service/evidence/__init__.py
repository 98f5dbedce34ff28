"""Evidence photos from the field: stored by content hash, checked against the incident's place and time."""
