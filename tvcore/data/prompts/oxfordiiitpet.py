"""OxfordIIITPet (14- and 20-task sets): prompts and the 37 breed names.

Sources: the TALL-masks code, github.com/nik-dim/tall_masks at commit
d10af8b21383322367fb35474bd9cd0f9ebe9ecf: ``src/datasets/templates.py``
(``oxfordpets_template``, 1 template) and ``src/datasets/oxfordpets.py`` (the
names are torchvision's ``OxfordIIITPet.classes``: each image id's breed part,
``american_pit_bull_terrier``, as title-cased words, ``American Pit Bull Terrier``).
FusionBench (github.com/tanganke/fusion_bench at commit
54c9e8c9d9621620c720452cd8533332a32d3689,
``fusion_bench/tasks/clip_classification/oxford_iiit_pet.py``) writes the same
breeds, in the same order, lower case with underscores; tvcore follows TALL-masks.

Label order: the class ids 1..37 of ``annotations/trainval.txt``, read as 0..36
(alphabetical by breed, cats and dogs together).
"""

from __future__ import annotations

SOURCE = ("nik-dim/tall_masks@d10af8b src/datasets/templates.py (oxfordpets_template); "
          "src/datasets/oxfordpets.py (torchvision OxfordIIITPet.classes)")

TEMPLATES = (
    "a photo of a {}, a type of pet.",
)

CLASSNAMES = (
    "Abyssinian", "American Bulldog", "American Pit Bull Terrier", "Basset Hound", "Beagle", "Bengal",
    "Birman", "Bombay", "Boxer", "British Shorthair", "Chihuahua", "Egyptian Mau", "English Cocker Spaniel",
    "English Setter", "German Shorthaired", "Great Pyrenees", "Havanese", "Japanese Chin", "Keeshond",
    "Leonberger", "Maine Coon", "Miniature Pinscher", "Newfoundland", "Persian", "Pomeranian", "Pug",
    "Ragdoll", "Russian Blue", "Saint Bernard", "Samoyed", "Scottish Terrier", "Shiba Inu", "Siamese",
    "Sphynx", "Staffordshire Bull Terrier", "Wheaten Terrier", "Yorkshire Terrier",
)
