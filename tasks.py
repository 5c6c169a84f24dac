"""Invoke entry points. Parse flags, call the library, turn errors into Exit. Nothing else."""
from invoke import Collection

from provision.lab.tasks import lab

namespace = Collection(lab)
