"""A local Azure Functions host for this app (``make local``), for machines without Functions Core Tools.

It serves the functions the app registers, from their own binding metadata (``app.get_functions()``): HTTP
routes with the host's function-key check, the Event Grid webhook with its validation handshake, the timer
on its NCRONTAB schedule and the queue trigger from Azurite — one generic host, no per-function code.
Not deployed (``.funcignore``); docs/FUNCTIONS.md "Running locally" says what it emulates and what not.
"""
