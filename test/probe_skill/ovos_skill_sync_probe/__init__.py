"""A test skill: records every settings change it is told about, and stores a setting
when asked on the bus (as a skill does when its user changes something by voice)."""
from ovos_bus_client.message import Message
from ovos_workshop.skills import OVOSSkill


class SyncProbeSkill(OVOSSkill):
    def initialize(self):
        self.settings.merge({"greeting": "hello", "volume": 5, "enabled": True}, new_only=True)
        self.settings_change_callback = self.on_settings_changed
        self.add_event("sync-probe.store", self.handle_store)

    def on_settings_changed(self):
        # the test reads what the callback saw, at the moment it ran
        self.bus.emit(Message("sync-probe.changed", {"settings": dict(self.settings)}))

    def handle_store(self, message):
        self.settings.update(message.data)
        self.settings.store()
        self.bus.emit(message.reply("sync-probe.stored", {"settings": dict(self.settings)}))
