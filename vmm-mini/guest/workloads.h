/* workloads: the storage workloads (their own files) as the selector in
 * workloads.c sees them: each takes the text after "NAME," (KEY=N,...;
 * may be empty) and returns the exit status. */
#ifndef GUEST_WORKLOADS_H
#define GUEST_WORKLOADS_H

int w_records(const char *args);
int w_randrw(const char *args);

#endif
