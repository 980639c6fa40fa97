/* echo: a service thread that answers doorbell 0 with a wake-up of vCPU 0.
 *
 * The thread is pinned apart from the vCPU threads (vmm_pin_service_thread).
 * It blocks in read() on the doorbell's eventfd: one doorbell at a time is
 * in flight in the guest's `doorbell` workload, so there is nothing to gain
 * from polling, and a poll loop would steal the CPU the other engineers'
 * builds use on a 2-core machine.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "vmm-mini/vmm-int.h"

struct vmm_echo {
	struct vmm *vm;
	int bell_efd;		/* doorbell 0 */
	int sink_efd;		/* doorbell 1, never read */
	int wake_efd;		/* irqfd of vCPU 0 */
	pthread_t thread;
	volatile int quit;
	uint64_t answered;
};

static void *echo_thread(void *arg)
{
	struct vmm_echo *e = arg;

	(void)vmm_pin_service_thread(e->vm);
	for (;;) {
		uint64_t n;

		if (read(e->bell_efd, &n, sizeof(n)) != sizeof(n)) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (e->quit)
			break;
		e->answered++;
		if (vmm_wake(e->vm, 0) < 0)
			break;
	}
	return NULL;
}

static void echo_free(struct vmm_echo *e)
{
	if (e->bell_efd >= 0)
		close(e->bell_efd);
	if (e->sink_efd >= 0)
		close(e->sink_efd);
	if (e->wake_efd >= 0)
		close(e->wake_efd);
	free(e);
}

int vmm_echo_start(struct vmm *vm, struct vmm_echo **out)
{
	struct vmm_echo *e = calloc(1, sizeof(*e));
	int err;

	*out = NULL;
	if (!e)
		return vmm_set_error(vm, -ENOMEM, "out of memory");
	e->vm = vm;
	e->bell_efd = eventfd(0, EFD_CLOEXEC);
	e->sink_efd = eventfd(0, EFD_CLOEXEC);
	e->wake_efd = eventfd(0, EFD_CLOEXEC);
	if (e->bell_efd < 0 || e->sink_efd < 0 || e->wake_efd < 0) {
		err = vmm_set_error(vm, -errno, "eventfd: %s", strerror(errno));
		goto fail;
	}
	err = vmm_add_doorbell(vm, 0, e->bell_efd);
	if (!err)
		err = vmm_add_doorbell(vm, 1, e->sink_efd);
	if (!err)
		err = vmm_add_wake(vm, 0, e->wake_efd);
	if (err)
		goto fail;
	((struct vmm_boot *)(vm->mem + VMM_GPA_BOOT))->doorbells = vm->doorbells;
	err = -pthread_create(&e->thread, NULL, echo_thread, e);
	if (err) {
		vmm_set_error(vm, err, "echo thread: %s", strerror(-err));
		goto fail;
	}
	*out = e;
	return 0;
fail:
	/* The VM keeps KVM's references to the eventfds until it is destroyed;
	 * closing ours is safe. */
	echo_free(e);
	return err;
}

uint64_t vmm_echo_stop(struct vmm_echo *e)
{
	uint64_t one = 1, n;

	if (!e)
		return 0;
	e->quit = 1;
	(void)!write(e->bell_efd, &one, sizeof(one));
	pthread_join(e->thread, NULL);
	n = e->answered;
	echo_free(e);
	return n;
}
