"""A small real skill installed beside ours in the tests: it has a settingsmeta and a
settings_change_callback, so the sync agent is tested on a skill it does not own."""
from setuptools import setup

setup(
    name="ovos-skill-sync-probe",
    version="0.1.0",
    packages=["ovos_skill_sync_probe"],
    package_data={"ovos_skill_sync_probe": ["settingsmeta.yaml"]},
    install_requires=["ovos-workshop>=7,<9"],
    entry_points={"opm.skill": ["skill-sync-probe.test=ovos_skill_sync_probe:SyncProbeSkill"]},
)
