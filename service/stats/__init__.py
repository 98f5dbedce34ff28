"""Statistics and accountability scoring over the incident record, for supervisors and evaluators.

Pure computations live in their own modules (:mod:`periods`, :mod:`areas`, :mod:`lifecycle`, :mod:`response`,
:mod:`outcomes`, :mod:`rules`, :mod:`scoring`) and work on typed records (:mod:`records`); :mod:`queries` loads
those records from the database, :mod:`service` composes both for a caller's scope, :mod:`router` is the API.
"""
