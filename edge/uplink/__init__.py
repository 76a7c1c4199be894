"""The device's links to the centre: MQTT for telemetry and commands, gRPC for data."""
