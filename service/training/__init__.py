"""Training data from the field: judged sighting frames exported for labelling and retraining."""
