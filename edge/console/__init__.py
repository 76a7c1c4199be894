"""The collection console: the clerks' local web pages on 127.0.0.1 (S-02, S-03, S-05, S-07).

``workflow`` is the sans-I/O core (draft → entered → reviewed → signed → sealed, with the audit);
``drafts`` keeps unsealed records encrypted at rest; ``accounts`` checks clerks' passwords and
locks out after repeated failures; ``search`` finds people in the township's initial data by
name, ID number or pinyin; ``sheet`` prints the confirmation sheet; ``app`` is the FastAPI
adapter and ``service`` runs it under the daemon.
"""
