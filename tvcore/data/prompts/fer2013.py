"""FER2013 (14- and 20-task sets): prompts and the 7 expression names.

Sources: the TALL-masks code, github.com/nik-dim/tall_masks at commit
d10af8b21383322367fb35474bd9cd0f9ebe9ecf: ``src/datasets/templates.py``
(``fer2013_template``, 6 templates) and ``src/datasets/fer2013.py``, which lists
each class as a list of synonyms in FER2013's label order (``["angry"]``, ...,
``["happy", "smiling"]``, ...). Its head formats the whole Python list into the
prompt (``a photo of a ['angry'] looking face.``), which reads as an accident;
tvcore takes the first synonym of each. Those are FusionBench's words
(github.com/tanganke/fusion_bench at commit 54c9e8c9d9621620c720452cd8533332a32d3689,
``fusion_bench/tasks/clip_classification/fer2013.py``), which lists them in the
sorted order of its image-folder copy (neutral fifth), not in FER2013's label order.

Label order: the ``emotion`` column of FER2013's CSV, as torchvision reads it:
0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral.
"""

from __future__ import annotations

SOURCE = ("nik-dim/tall_masks@d10af8b src/datasets/templates.py (fer2013_template); "
          "src/datasets/fer2013.py (first synonym of each class)")

TEMPLATES = (
    "a photo of a {} looking face.",
    "a photo of a face showing the emotion: {}.",
    "a photo of a face looking {}.",
    "a face that looks {}.",
    "they look {}.",
    "look at how {} they are.",
)

CLASSNAMES = ("angry", "disgusted", "fearful", "happy", "sad", "surprised", "neutral")
