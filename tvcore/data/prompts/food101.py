"""Food101 (20-task set): prompts and the 101 dish names.

Sources: the TALL-masks code, github.com/nik-dim/tall_masks at commit
d10af8b21383322367fb35474bd9cd0f9ebe9ecf: ``src/datasets/templates.py``
(``food101_template``, 1 template) and ``src/datasets/food101.py`` (the names are
torchvision's ``Food101.classes``: the keys of ``meta/train.json``, sorted,
underscores kept: ``apple_pie``). FusionBench (github.com/tanganke/fusion_bench at
commit 54c9e8c9d9621620c720452cd8533332a32d3689,
``fusion_bench/tasks/clip_classification/food101.py``) writes the same dishes in
the same order with spaces (``apple pie``); tvcore follows TALL-masks.

Label order: Python's sorted order of the class names (``cheese_plate`` before
``cheesecake``), as torchvision gives it.
"""

from __future__ import annotations

SOURCE = ("nik-dim/tall_masks@d10af8b src/datasets/templates.py (food101_template); "
          "src/datasets/food101.py (torchvision Food101.classes)")

TEMPLATES = (
    "a photo of {}, a type of food.",
)

CLASSNAMES = (
    "apple_pie", "baby_back_ribs", "baklava", "beef_carpaccio", "beef_tartare", "beet_salad", "beignets",
    "bibimbap", "bread_pudding", "breakfast_burrito", "bruschetta", "caesar_salad", "cannoli",
    "caprese_salad", "carrot_cake", "ceviche", "cheese_plate", "cheesecake", "chicken_curry",
    "chicken_quesadilla", "chicken_wings", "chocolate_cake", "chocolate_mousse", "churros", "clam_chowder",
    "club_sandwich", "crab_cakes", "creme_brulee", "croque_madame", "cup_cakes", "deviled_eggs", "donuts",
    "dumplings", "edamame", "eggs_benedict", "escargots", "falafel", "filet_mignon", "fish_and_chips",
    "foie_gras", "french_fries", "french_onion_soup", "french_toast", "fried_calamari", "fried_rice",
    "frozen_yogurt", "garlic_bread", "gnocchi", "greek_salad", "grilled_cheese_sandwich", "grilled_salmon",
    "guacamole", "gyoza", "hamburger", "hot_and_sour_soup", "hot_dog", "huevos_rancheros", "hummus",
    "ice_cream", "lasagna", "lobster_bisque", "lobster_roll_sandwich", "macaroni_and_cheese", "macarons",
    "miso_soup", "mussels", "nachos", "omelette", "onion_rings", "oysters", "pad_thai", "paella", "pancakes",
    "panna_cotta", "peking_duck", "pho", "pizza", "pork_chop", "poutine", "prime_rib", "pulled_pork_sandwich",
    "ramen", "ravioli", "red_velvet_cake", "risotto", "samosa", "sashimi", "scallops", "seaweed_salad",
    "shrimp_and_grits", "spaghetti_bolognese", "spaghetti_carbonara", "spring_rolls", "steak",
    "strawberry_shortcake", "sushi", "tacos", "takoyaki", "tiramisu", "tuna_tartare", "waffles",
)
