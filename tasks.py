"""`invoke …` inside a clone: the package's task collection (provision/tasks.py, the same one
the `redis-provision` console script runs) plus the local lab's tasks, which only a clone has."""
from lab.hooks import host_reboot
from lab.tasks import lab, vm_collection
from provision.tasks import collection

namespace = collection(host_reboot=host_reboot())
namespace.add_collection(lab)
namespace.add_collection(vm_collection)
