"""S-30 one application: the form and its items, routing with data minimisation, the delivery
outbox and its sender, departments' callbacks and tracking. Imports muster and controller.db."""
