"""Every table of the service, imported in one place for Alembic and for tests."""

from service.regions.tables import Region, RegionImport

__all__ = ["Region", "RegionImport"]
