"""Likenesses (characters): a real person's face, enrolled by that person under a challenge and with
consent, used in videos by the people they allow, and erased with every video made with it.

One class per concern, each built with only what it uses:

* :class:`Enrolment` (``enrolment.py``): challenges and enrolment, refusing someone else's face;
* :class:`Likenesses` (``likenesses.py``): reads, consent history, usage log, permissions, revocation;
* :class:`LikenessErasure` (``erasure.py``): crypto-shredding deletion and the retention sweep;
* :class:`LikenessUse` (``use.py``): what video creation and the worker ask (``@name`` mentions, the
  usage log, sealed inputs, the face guard);
* ``consent.py``: the consent text, its checks and records.
"""

from kinema.services.characters._rows import chip_key
from kinema.services.characters.consent import (
    CONSENT_SHA256,
    CONSENT_TEXT,
    CONSENT_VERSION,
    PURPOSES,
    VISIBILITIES,
    ConsentInput,
    Permissions,
    Visibility,
)
from kinema.services.characters.enrolment import NAME, Enrolment
from kinema.services.characters.erasure import LikenessDeletion, LikenessErasure
from kinema.services.characters.likenesses import Likenesses
from kinema.services.characters.use import MENTION, LikenessRevoked, LikenessUse, input_purpose

__all__ = [
    "CONSENT_SHA256",
    "CONSENT_TEXT",
    "CONSENT_VERSION",
    "MENTION",
    "NAME",
    "PURPOSES",
    "VISIBILITIES",
    "ConsentInput",
    "Enrolment",
    "LikenessDeletion",
    "LikenessErasure",
    "LikenessRevoked",
    "LikenessUse",
    "Likenesses",
    "Permissions",
    "Visibility",
    "chip_key",
    "input_purpose",
]
