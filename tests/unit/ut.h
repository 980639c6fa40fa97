/* Shared helpers of the unit tests (tests/unit/ut.c is linked into every
 * unit test program). */
#ifndef UT_H
#define UT_H

/* Remove a folder and everything below it (errors ignored). */
void ut_rmtree(const char *dir);
/* "dir/name" in one of 8 rotating static buffers. */
char *ut_path(const char *dir, const char *name);

#endif
