"""Reports for a period and area: XLSX tables, a PDF with a map and charts, and the provincial CSV of fire points.

:mod:`data` gathers everything once (:class:`~service.reports.data.ReportData`); the builders only format it.
"""
