"""ovos-skill-personal-backend: a private personal backend for OVOS / Mycroft devices.

The skill is in `skill.py`; `backend/` is the server it runs (also run standalone by
the `ovos-personal-backend` command). The skill class is imported on first use, not
here: Python imports this package before any of its modules, and the standalone server
has no use for the voice stack the skill needs (ovos-workshop, the message bus client,
the plugin manager and numpy), which would double its start time and memory.
"""


def __getattr__(name: str):
    # the opm.skill entry point names `ovos_skill_personal_backend:PersonalBackendSkill`
    if name == "PersonalBackendSkill":
        from .skill import PersonalBackendSkill
        return PersonalBackendSkill
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
