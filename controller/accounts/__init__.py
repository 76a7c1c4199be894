"""Who works at the centre and on the consoles: admin accounts with their roles, regions and
sessions, and the township clerks' accounts. May import ``controller.db`` only."""
