"""The chaos suite: a fleet of real device daemons, controller replicas, Mosquitto and PostgreSQL,
killed, cut and clock-jumped on a seeded plan (``muster/chaos_plan.py``), then counted."""
