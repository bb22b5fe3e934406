"""What a decode worker needs before its first item, imported once by the
forkserver that every worker is forked from (:func:`tvcore.data.loaders.worker_context`).

A worker receives its dataset pickled, and unpickling it imports torch,
torchvision's and OpenCLIP's transforms and tvcore's readers: 2 s a worker on a
2-core CPU, 3.5 s on a GPU box. Imported here once, in the server, they come with
every fork, and a worker starts in milliseconds. Importing this module is its
whole purpose; nothing else imports it.
"""

import torchvision.transforms  # noqa: F401

from ..openclip import open_clip_module
from . import cache, loaders  # noqa: F401

open_clip_module()
