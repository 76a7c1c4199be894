"""The collection console: the clerks' local web pages on 127.0.0.1 (S-02, S-03, S-05, S-07).

``workflow`` is the sans-I/O core (draft → entered → reviewed → signed, with the audit) and
``sealing`` its last steps (sign, the record to seal); ``drafts`` keeps unsealed records
encrypted at rest; ``accounts`` checks clerks' passwords and locks out after repeated failures;
``search`` finds people in the township's initial data by name, ID number or pinyin; ``sheet``
prints the confirmation sheet. ``app`` is the FastAPI adapter: one router per family of pages
(``routes_session``, ``routes_search``, ``routes_drafts``, ``routes_capture``, ``routes_review``,
``routes_sealing``) over what they share in ``deps``; ``service`` runs it under the daemon.
"""
