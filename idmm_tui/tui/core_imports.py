"""The dashboard's worker threads import the core (torch, torchvision, the registries) one at a time.

Two threads importing the same package at once can see it half initialised: torchvision's own
import cycle then fails with "cannot import name … from partially initialized module". The launch
form loads the registries and checks the recipe in two workers started together, and the zoo imports
its operations in a third, so every worker that may import the core for the first time holds
:data:`CORE_IMPORT` while it does.
"""

from __future__ import annotations

import threading

#: Held by a worker while it may import the core (re-entrant: a worker may nest).
CORE_IMPORT = threading.RLock()
