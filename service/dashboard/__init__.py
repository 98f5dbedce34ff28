"""The web dashboard: a single-page app (vanilla JS, CSS, SVG) served by the API process, fully offline."""
