"""The device side of the backend: what OVOS removed from its core, restored by the skill.

`mycroft_conf` points the device at a backend, `identity` keeps identity2.json, and the
sync agent (`agent`) keeps the device's configuration and skill settings in step with a
backend through one of two transports (`transports`).
"""
