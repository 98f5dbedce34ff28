"""System status: whether the closed loop's moving parts (alert delivery, satellite polling, cameras) are working."""
