"""`icp mappings edit`: a local page where an admin edits the mapping files.

`session` owns what an edit does (validation, preview, saving); `server` serves the page
(package data: page.html, app.js, app.css) on 127.0.0.1 behind a random token.
"""
