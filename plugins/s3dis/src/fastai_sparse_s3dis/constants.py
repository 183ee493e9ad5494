"""S3DIS constants: the dataset folder, the six areas, the 13 classes and their colours, the
known defects of the v1.2 download."""

from __future__ import annotations

import numpy as np

__all__ = [
    "AREAS",
    "CLASSES",
    "CLASS_ALIASES",
    "CLASS_COLORS",
    "DATASET_DIR",
    "IGNORE_INDEX",
    "KNOWN_DEFECTS",
    "TRAIN_AREAS",
    "VALID_AREA",
]

#: The folder the official archive ``Stanford3dDataset_v1.2_Aligned_Version.zip`` unpacks to.
DATASET_DIR = "Stanford3dDataset_v1.2_Aligned_Version"

#: The six areas (one building part each), in order.
AREAS = ("Area_1", "Area_2", "Area_3", "Area_4", "Area_5", "Area_6")

#: The standard protocol: validate (test) on Area 5, train on the other five.
VALID_AREA = 5
TRAIN_AREAS = (1, 2, 3, 4, 6)

#: The 13 semantic classes in the order every published S3DIS result uses (class index 0..12).
CLASSES = (
    "ceiling",
    "floor",
    "wall",
    "beam",
    "column",
    "window",
    "door",
    "table",
    "chair",
    "sofa",
    "bookcase",
    "board",
    "clutter",
)

#: Object names found in annotation file names that are not one of the 13 classes: ``stairs``
#: objects (a few rooms have them) count as clutter.
CLASS_ALIASES = {"stairs": "clutter"}

#: Label of points not covered by any annotation file (ignored by the loss and the metrics).
IGNORE_INDEX = -100

#: The usual S3DIS visualisation colours (uint8 RGB), one row per class of :data:`CLASSES`.
CLASS_COLORS = np.array(
    [
        [0, 255, 0],  # ceiling
        [0, 0, 255],  # floor
        [0, 255, 255],  # wall
        [255, 255, 0],  # beam
        [255, 0, 255],  # column
        [100, 100, 255],  # window
        [200, 200, 100],  # door
        [170, 120, 200],  # table
        [255, 0, 0],  # chair
        [200, 100, 100],  # sofa
        [10, 200, 100],  # bookcase
        [200, 200, 200],  # board
        [50, 50, 50],  # clutter
    ],
    dtype=np.uint8,
)

#: Defects of the v1.2 Aligned download reported by its users, and how the reader handles each
#: (every one is reported when met; none stops ``prepare``).
KNOWN_DEFECTS = {
    "Area_5/hallway_6/Annotations/ceiling_1.txt": (
        "line 180389 has a NUL character (0x00) instead of the space between red and green "
        "('185\\x00187'), so it splits into 5 columns: read as a separator"
    ),
    "Area_6/copyRoom_1/copy_Room_1.txt": (
        "the room file's name differs from its folder (copy_Room_1.txt in copyRoom_1/): used as the room file"
    ),
    "Area_3/hallway_2/hallway_2.txt": (
        "one line has a control character inside a number ('-9.1\\x160'): the value cannot be "
        "recovered, so the point is left out and counted"
    ),
    "Area_5/office_36/Annotations/wall_3 (1).txt": ("a byte-identical second copy of wall_3.txt: skipped"),
}
