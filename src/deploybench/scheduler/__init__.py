"""Admission: which queued job a free target takes next (pure policy functions)."""
