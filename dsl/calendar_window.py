"""How many days before a business-day calendar runs out it is warned about: one number for ``bsp check``'s
W020 (``dsl.checker``, ``--calendar-warn-days``) and the running engine's log line, ``bsp status`` and the
``bsp_calendar_warn_days`` gauge (``engine.calexpiry``).  The deployment file's ``calendars: {warn_days: N}``
sets it for a deployment (engine/deploy.py).  A module of its own, importing nothing: the light commands
(``bsp top``, ``bsp --help``) read it without loading the language."""

WARN_DAYS = 60                 # days before a calendar runs out from which it is warned about
