/* The project's VMBus ring, compiled unchanged into the guest (it is
 * freestanding: see vmbus/ring.h). */
#include "vmbus/ring.c"
