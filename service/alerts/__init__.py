"""Alerts: a transactional outbox, delivery channels with rate limits and digests, escalation timers."""
