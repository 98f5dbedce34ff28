"""The camera registry: towers, lenses and patrol presets, kept in the database and served to patrol workers."""
