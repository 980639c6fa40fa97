/* The project's VSS codec, compiled unchanged into the guest (it is
 * freestanding: see vss/vss.h). */
#include "vss/wire.c"
