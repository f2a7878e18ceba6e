"""One colour per emotion, shared by annotated images and videos, the timeline plot, the webcam
window and the web page (the server sends this table in GET /v1/model as `colors`, and the colour
of the text on each, `ink_of`, as `inks`).

Picked to be told apart at a glance, on photos and on the page's dark background, and to keep
their usual associations (angry red, happy yellow, sad blue, neutral grey).
"""

from __future__ import annotations

from collections.abc import Iterable

# "#rrggbb", the web's notation; OpenCV draws in BGR (`bgr_of`), matplotlib takes RGB in [0, 1].
EMOTION_COLORS: dict[str, str] = {
    "angry": "#dc2828",
    "disgust": "#289628",
    "fear": "#a03caa",
    "happy": "#ffc800",
    "neutral": "#bebebe",
    "sad": "#2878d2",
    "surprise": "#00d2e6",
    "contempt": "#f76b15",  # FER+'s eighth class, for models trained with it
}
# Labels outside the table (a model with its own classes) take these in turn.
_SPARE = ("#d6409f", "#12a594", "#8e4ec6", "#f5d90a", "#3e63dd")


def hex_of(label: str, labels: Iterable[str] = ()) -> str:
    """The label's colour as "#rrggbb"; an unknown label gets a spare by its place in `labels`."""
    if label in EMOTION_COLORS:
        return EMOTION_COLORS[label]
    others = [name for name in labels if name not in EMOTION_COLORS]
    return _SPARE[others.index(label) % len(_SPARE)] if label in others else "#00ff00"


def colors_for(labels: Iterable[str]) -> dict[str, str]:
    """{label: "#rrggbb"} for a model's labels (what the web page receives)."""
    labels = list(labels)
    return {name: hex_of(name, labels) for name in labels}


def ink_of(label: str, labels: Iterable[str] = ()) -> str:
    """The colour text on the label's colour is written in: black on light, white on dark (by luma)."""
    h = hex_of(label, labels)
    luma = 0.299 * int(h[1:3], 16) + 0.587 * int(h[3:5], 16) + 0.114 * int(h[5:7], 16)
    return "#000000" if luma > 140 else "#ffffff"


def inks_for(labels: Iterable[str]) -> dict[str, str]:
    """{label: "#rrggbb"} of the text on each label's tag (`ink_of`; the web page receives it)."""
    labels = list(labels)
    return {name: ink_of(name, labels) for name in labels}


def bgr_of(label: str, labels: Iterable[str] = ()) -> tuple[int, int, int]:
    """The label's colour in OpenCV's (blue, green, red) order."""
    return hex_to_bgr(hex_of(label, labels))


def hex_to_bgr(h: str) -> tuple[int, int, int]:
    """"#rrggbb" in OpenCV's (blue, green, red) order."""
    return int(h[5:7], 16), int(h[3:5], 16), int(h[1:3], 16)


def rgb01_of(label: str, labels: Iterable[str] = ()) -> tuple[float, float, float]:
    """The label's colour as matplotlib takes it: (red, green, blue) in [0, 1]."""
    b, g, r = bgr_of(label, labels)
    return r / 255.0, g / 255.0, b / 255.0
