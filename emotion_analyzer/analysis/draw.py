"""Drawing results on a frame: a box per face, its top emotion, a probability bar chart, FPS."""

import cv2

FONT = cv2.FONT_HERSHEY_SIMPLEX
# BGR colour per emotion, so a label keeps its colour across faces and frames; each dark or saturated
# enough to show on light backgrounds as on dark ones, behind black caption text.
COLOURS = {
    "angry": (40, 40, 230), "disgust": (40, 140, 40), "fear": (160, 60, 160), "happy": (40, 210, 250),
    "neutral": (150, 130, 110), "sad": (210, 120, 40), "surprise": (60, 200, 120), "contempt": (120, 120, 60),
}


def colour_for(label):
    return COLOURS.get(label, (255, 255, 255))


def as_bgr(image):
    """A frame to draw on: gray and BGRA frames become BGR (a copy; the source stays untouched)."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image.copy()


def draw_face(frame, face, labels):
    """A FaceReading on `frame`: its box, the emotion shown with its probability and id, and the bars."""
    x, y, w, h = box = face.box
    colour = colour_for(labels[face.shown])
    cv2.rectangle(frame, (x, y), (x + w, y + h), colour, 2)
    caption = f"{labels[face.shown]} {face.confidence:.0%}  #{face.face_id}"
    (tw, th), _ = cv2.getTextSize(caption, FONT, 0.5, 1)
    ty = y - 6 if y - th - 8 >= 0 else y + h + th + 6
    cv2.rectangle(frame, (x, ty - th - 4), (x + tw + 4, ty + 3), colour, -1)
    cv2.putText(frame, caption, (x + 2, ty), FONT, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    draw_bars(frame, box, face.probabilities, labels)


def draw_bars(frame, box, probabilities, labels):
    """A small bar per emotion under the face (above it when the face touches the bottom edge)."""
    x, y, w, h = box
    row, name_width = 11, 58
    chart_height = row * len(labels)
    top = y + h + 4 if y + h + 4 + chart_height <= frame.shape[0] else max(0, y - chart_height - 22)
    left = min(max(0, x), max(0, frame.shape[1] - name_width - 40))
    bar_width = max(40, min(w, frame.shape[1] - left) - name_width)
    cv2.rectangle(frame, (left, top), (left + name_width + bar_width, top + chart_height), (30, 30, 30), -1)
    for i, (label, p) in enumerate(zip(labels, probabilities)):
        y0 = top + i * row
        cv2.putText(frame, label[:8], (left + 2, y0 + 9), FONT, 0.33, (255, 255, 255), 1, cv2.LINE_AA)
        cv2.rectangle(frame, (left + name_width, y0 + 2), (left + name_width + int(bar_width * float(p)), y0 + row - 1),
                      colour_for(label), -1)


KEYS_HINT = "q quit  p pause  s snapshot"


def draw_status(frame, fps, faces, paused=False):
    """The window's status line: frame rate (none before it is measured, as on a still photo), faces,
    and the keys (or that it is paused)."""
    rate = f"{fps:5.1f} fps  " if fps else ""
    text = f"{rate}{faces} face{'s' if faces != 1 else ''}  " + ("PAUSED (p resumes)" if paused else KEYS_HINT)
    cv2.putText(frame, text, (8, 20), FONT, 0.55, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(frame, text, (8, 20), FONT, 0.55, (0, 255, 0), 1, cv2.LINE_AA)
