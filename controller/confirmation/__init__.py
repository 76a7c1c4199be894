"""The annual confirmation of pension receivers (S-20..S-23): campaigns, the payment roll, visit plans, confirmations from every channel, notice, stop, restoration, deaths, spot checks, reports, the self-service page.
May import ``controller.db``, ``controller.records`` (region names, the table reader of imports) and ``muster``."""
