"""Device kinds: the one list of them, and the one place "gpu" is read as "cuda". No torch import here.

Every layer names a kind with :class:`DeviceKind` (the engine's --device, telemetry, the job store's
`device` column, the CLI and the app); its values are the strings those places have always written.
"""

from __future__ import annotations

from engine.events import TextEnum

ALIASES = {"gpu": "cuda"}  # what users type → the kind it means


class DeviceKind(TextEnum):
    """A kind of device, in the order every listing shows them."""

    MLU = "mlu"
    CUDA = "cuda"
    CPU = "cpu"

    @property
    def has_cards(self) -> bool:
        """MLU and CUDA jobs claim cards; a CPU job takes a slot."""
        return self is not DeviceKind.CPU

    @property
    def visible_env(self) -> str | None:
        """The variable that selects which of this kind's cards a process sees (None: CPU)."""
        return {"mlu": "MLU_VISIBLE_DEVICES", "cuda": "CUDA_VISIBLE_DEVICES"}.get(self.value)

    @classmethod
    def parse(cls, text: str) -> DeviceKind:
        """The kind `text` names ("gpu" reads as cuda); ValueError naming the choices otherwise."""
        key = text.strip().lower()
        try:
            return cls(ALIASES.get(key, key))
        except ValueError:
            raise ValueError(f"unknown device {text!r}: use {', '.join(NAMES)}") from None


KINDS = tuple(k.value for k in DeviceKind)  # "mlu", "cuda", "cpu"
CARD_KINDS = tuple(k for k in DeviceKind if k.has_cards)  # best first: the default where the host has one
NAMES = (*KINDS, *ALIASES)  # what a --device flag accepts besides "auto"


def parse_device(text: str) -> str:
    """A --device value: "auto" stays, anything else becomes its kind's name ("gpu" → "cuda")."""
    return "auto" if text == "auto" else DeviceKind.parse(text).value
